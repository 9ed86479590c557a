//! A background job that calls Wise for every linked user of a store, outside any request,
//! and prints one line per user. Runs offline against the embedded emulator:
//!
//! ```sh
//! cargo run --example background_job
//! ```
//!
//! The job needs no request context: `WiseOAuth::linked_users` walks the store page by
//! page and `WiseOAuth::client` gives each user a client whose calls always carry a valid
//! token (refreshed when needed, repeated once after a 401).

use std::error::Error;

use wise_oauth::{ClientSecret, Environment, UserId, WiseConfig, WiseOAuth};
use wise_oauth_mock::{MockWise, MockWiseHandle, NewUser};

const CLIENT_ID: &str = "background-job";
const CLIENT_SECRET: &str = "background-job-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:3000/wise/callback";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mock = MockWise::builder()
        .client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        .start()
        .await?;
    let env = Environment::custom("emulator", &mock.base_url(), &mock.authorize_url())?;
    let config = WiseConfig::builder(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT_URI)
        .environment(env)
        .build()?;
    let wise = WiseOAuth::builder(config).build()?;

    // What the web app did earlier: five users linked their Wise accounts.
    for n in 1..=5 {
        let email = format!("user{n}@example.com");
        mock.create_user(NewUser::new(&email, "password1"))?;
        link(&wise, &mock, &UserId::new(format!("app-user-{n}"))?, &email).await?;
    }

    // The job: every linked user, two per page.
    let mut after: Option<UserId> = None;
    loop {
        let page = wise.linked_users(after.as_ref(), 2).await?;
        for user in &page.users {
            let client = wise.client(user);
            let line = match client.profiles().await {
                Ok(profiles) => {
                    let mut parts = Vec::new();
                    for profile in &profiles {
                        for balance in client.balances(profile.id, &["STANDARD"]).await? {
                            parts.push(balance.amount.to_string());
                        }
                    }
                    format!("profile(s) {}: {}", profiles.len(), parts.join(", "))
                }
                Err(e) if e.needs_relink() => "must link Wise again".to_owned(),
                Err(e) => format!("skipped for now: {e}"),
            };
            println!("{}: {line}", user.as_str());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    mock.shutdown().await;
    Ok(())
}

/// The link flow as a browser would run it, with the emulator approving for `email`.
async fn link(
    wise: &WiseOAuth,
    mock: &MockWiseHandle,
    user: &UserId,
    email: &str,
) -> Result<(), Box<dyn Error>> {
    mock.set_auto_approve(Some(email));
    let start = wise.start_link(user, &Default::default(), None).await?;
    let cookie = start
        .set_cookie()
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .ok_or("no binding cookie")?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = browser.get(start.authorize_url().clone()).send().await?;
    let location = response
        .headers()
        .get("location")
        .ok_or("the emulator did not redirect")?
        .to_str()?;
    let query = url::Url::parse(location)?
        .query()
        .ok_or("no callback query")?
        .to_owned();
    wise.complete_link(user, &query, Some(&cookie)).await?;
    Ok(())
}

//! Sign-up with an invitation code, in process.

use crate::harness::*;

/// With an invitation code, sign-up needs it: throwaway accounts cannot
/// take a class's lab slots.
#[tokio::test]
async fn signup_with_an_invitation_code_needs_the_code() {
    let server = App::start(&["--signup-code", "class-of-2026"]).await;
    let client = browser();
    let page = get_page(&client, &server.at("/signup")).await;
    assert!(page.contains("Invitation code"), "{page}");
    for code in ["", "class-of-2025"] {
        let response = submit(
            &client,
            &server,
            "/signup",
            "/signup",
            &[
                ("name", "stranger"),
                ("password", "stranger password"),
                ("confirm", "stranger password"),
                ("invitation", code),
            ],
        )
        .await;
        assert_eq!(response.status(), 403, "code {code:?}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("invitation code is not valid")
        );
    }
    let response = submit(
        &client,
        &server,
        "/signup",
        "/signup",
        &[
            ("name", "student"),
            ("password", "student password"),
            ("confirm", "student password"),
            ("invitation", "class-of-2026"),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
}

//! What every response is held to: the content security policy, and the
//! size of a request body.

use axum::http::{HeaderValue, header};

/// Forms and JSON calls are small; anything bigger is refused before a
/// handler sees it.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything comes from us: no inline scripts or styles, no frames, no
/// foreign connections. With a nonce (the lesson page), the terminal
/// (xterm.js) may add `<style>` elements carrying it and colour cells with
/// `style` attributes; attribute styles hold no selectors, so they cannot
/// read the page the way an injected stylesheet could. Scripts stay `'self'`.
pub fn content_security_policy(style_nonce: Option<&str>) -> String {
    let terminal_styles = style_nonce
        .map(|nonce| {
            format!(" style-src-elem 'self' 'nonce-{nonce}'; style-src-attr 'unsafe-inline';")
        })
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self';{terminal_styles} \
         script-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A page that shows terminals: rendered with a fresh style nonce (its
/// template puts it in `<meta name="style-nonce">`) and served under the
/// policy that admits the terminal's styles carrying it.
pub fn with_terminal_styles(
    render: impl FnOnce(String) -> axum::response::Response,
) -> axum::response::Response {
    let nonce = crate::db::random_secret();
    let mut response = render(nonce.clone());
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

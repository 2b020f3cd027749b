//! The names of the built-in rules: what `disable` and `actions` take, what markers
//! show and what [`Counts`](crate::Counts) are keyed by.
//!
//! A key rule is named after its key (`set-cookie` becomes `set_cookie`). One name,
//! [`PRIVATE_KEY`], is both a key rule and a value detector: disabling it or giving it
//! an action affects both.

/// Key rule `password`.
pub const PASSWORD: &str = "password";
/// Key rule `passwd`.
pub const PASSWD: &str = "passwd";
/// Key rule `secret`.
pub const SECRET: &str = "secret";
/// Key rule `token`.
pub const TOKEN: &str = "token";
/// Key rule `access_token`.
pub const ACCESS_TOKEN: &str = "access_token";
/// Key rule `refresh_token`.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Key rule `api_key`.
pub const API_KEY: &str = "api_key";
/// Key rule `apikey`.
pub const APIKEY: &str = "apikey";
/// Key rule `client_secret`.
pub const CLIENT_SECRET: &str = "client_secret";
/// Key rule `authorization`.
pub const AUTHORIZATION: &str = "authorization";
/// Key rule `cookie`.
pub const COOKIE: &str = "cookie";
/// Key rule for the `set-cookie` key.
pub const SET_COOKIE: &str = "set_cookie";
/// Key rule `private_key`, and the PEM private key block detector.
pub const PRIVATE_KEY: &str = "private_key";

/// Payment card numbers (Luhn-valid).
pub const CREDIT_CARD: &str = "credit_card";
/// US social security numbers (`ddd-dd-dddd`).
pub const SSN: &str = "ssn";
/// Email addresses.
pub const EMAIL: &str = "email";
/// International bank account numbers (mod-97 valid).
pub const IBAN: &str = "iban";
/// JSON web tokens.
pub const JWT: &str = "jwt";
/// `Bearer <token>` credentials.
pub const BEARER: &str = "bearer";
/// `Basic <base64 user:password>` credentials.
pub const BASIC_AUTH: &str = "basic_auth";
/// AWS access key ids.
pub const AWS_ACCESS_KEY: &str = "aws_access_key";
/// GitHub tokens.
pub const GITHUB_TOKEN: &str = "github_token";
/// OpenAI API keys.
pub const OPENAI_KEY: &str = "openai_key";
/// Anthropic API keys.
pub const ANTHROPIC_KEY: &str = "anthropic_key";
/// A value assigned to a secret-looking key in free text (`password=hunter2`).
pub const ASSIGNED_SECRET: &str = "assigned_secret";

/// The built-in key rules, by name (each matches the key of the same name).
pub const KEY_RULES: &[&str] = &[
    PASSWORD,
    PASSWD,
    SECRET,
    TOKEN,
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    API_KEY,
    APIKEY,
    CLIENT_SECRET,
    AUTHORIZATION,
    COOKIE,
    SET_COOKIE,
    PRIVATE_KEY,
];

/// The built-in value detectors, by name.
pub const DETECTORS: &[&str] = &[
    CREDIT_CARD,
    SSN,
    EMAIL,
    IBAN,
    JWT,
    BEARER,
    BASIC_AUTH,
    PRIVATE_KEY,
    AWS_ACCESS_KEY,
    GITHUB_TOKEN,
    OPENAI_KEY,
    ANTHROPIC_KEY,
    ASSIGNED_SECRET,
];

/// Whether `name` is a built-in rule (key rule or detector).
pub fn is_builtin(name: &str) -> bool {
    KEY_RULES.contains(&name) || DETECTORS.contains(&name)
}

/// Every built-in name once, key rules first.
pub(crate) fn all() -> impl Iterator<Item = &'static str> {
    KEY_RULES
        .iter()
        .chain(DETECTORS.iter().filter(|d| !KEY_RULES.contains(d)))
        .copied()
}

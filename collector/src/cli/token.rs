//! `logbook token create|list|revoke`: API tokens for the HTTP API and OTLP ingest.
//! A token's text is printed once, at creation; the store keeps only its SHA-256.
//! Each change leaves an audit record. Works beside a running collector, which sees
//! a new or revoked token at its next request.

use std::io::{self, Write};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use logbook_proto::{Timestamp, Value};

use super::output::to_seconds;
use super::write_store;
use crate::admission::auth::new_token;
use crate::audit::admin_record;
use crate::config::Config;
use crate::store::{open_reader, Role, Visibility};

/// Arguments of `logbook token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// admin: everything; viewer: reads (of one tenant and/or user with --tenant,
        /// --user); ingest: sending records only.
        #[arg(long, value_enum)]
        role: Role,
        /// A viewer's tenant: it reads only this tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// A viewer's user: it reads only this user's records.
        #[arg(long, value_name = "USER_ID")]
        user: Option<String>,
        /// A name for people, unique among tokens not revoked [default: the role and
        /// scope].
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tokens (never their text).
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id or name; requests with it fail from then on.
    Revoke {
        /// The token's id (as `token list` shows it) or name.
        token: String,
    },
}

impl TokenArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        match &self.command {
            TokenCommand::Create {
                role,
                tenant,
                user,
                name,
            } => create(config, *role, tenant.clone(), user.clone(), name.clone()),
            TokenCommand::List { json } => list(config, *json),
            TokenCommand::Revoke { token } => revoke(config, token),
        }
    }
}

fn create(
    config: &Config,
    role: Role,
    tenant: Option<String>,
    user_id: Option<String>,
    name: Option<String>,
) -> anyhow::Result<()> {
    if role != Role::Viewer && (tenant.is_some() || user_id.is_some()) {
        bail!(
            "--tenant and --user scope a viewer; an {} token is not scoped",
            role.as_str()
        );
    }
    let visibility = Visibility { tenant, user_id };
    let name = name.unwrap_or_else(|| {
        let mut n = role.as_str().to_owned();
        for (k, v) in [
            ("tenant", &visibility.tenant),
            ("user", &visibility.user_id),
        ] {
            if let Some(v) = v {
                n.push_str(&format!(" {k}={v}"));
            }
        }
        n
    });
    let mut store = write_store(config)?;
    if store
        .reader()
        .tokens()?
        .iter()
        .any(|t| t.name == name && t.revoked.is_none())
    {
        bail!("a token named {name:?} exists already: give another --name, or revoke it first");
    }
    let (text, token) = new_token(&name, role, visibility)?;
    store.put_token(&token).context("storing the token")?;
    store
        .write(&[admin_record(
            "token_create",
            format!("Created {} token {} ({name}).", role.as_str(), token.id),
            token_fields(&token.id, &name, role, &token.tenant, &token.user_id),
        )])
        .context("the token is stored, but its audit record could not be written")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    eprintln!(
        "created {} token {} ({name}); it is shown only now: keep it somewhere safe",
        role.as_str(),
        token.id
    );
    Ok(())
}

fn token_fields(
    id: &str,
    name: &str,
    role: Role,
    tenant: &Option<String>,
    user_id: &Option<String>,
) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("token_id", Value::Str(id.to_owned())),
        ("token_name", Value::Str(name.to_owned())),
        ("role", Value::Str(role.as_str().to_owned())),
    ];
    if let Some(t) = tenant {
        fields.push(("scope_tenant", Value::Str(t.clone())));
    }
    if let Some(u) = user_id {
        fields.push(("scope_user", Value::Str(u.clone())));
    }
    fields
}

fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let tokens = open_reader(&config.db)?.tokens()?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &tokens)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:<24} {:<7} {:<16} {:<16} {:<20} REVOKED",
        "ID", "NAME", "ROLE", "TENANT", "USER", "CREATED"
    )?;
    for t in &tokens {
        writeln!(
            out,
            "{:<12} {:<24} {:<7} {:<16} {:<16} {:<20} {}",
            t.id,
            t.name,
            t.role.as_str(),
            t.tenant.as_deref().unwrap_or("-"),
            t.user_id.as_deref().unwrap_or("-"),
            to_seconds(t.created),
            t.revoked.map(to_seconds).unwrap_or_else(|| "-".into())
        )?;
    }
    Ok(())
}

fn revoke(config: &Config, which: &str) -> anyhow::Result<()> {
    let mut store = write_store(config)?;
    let revoked = store.revoke_token(which, Timestamp::now())?;
    if revoked.is_empty() {
        bail!("no token {which:?} that is not revoked already (see `logbook token list`)");
    }
    let records: Vec<_> = revoked
        .iter()
        .map(|t| {
            admin_record(
                "token_revoke",
                format!("Revoked {} token {} ({}).", t.role.as_str(), t.id, t.name),
                token_fields(&t.id, &t.name, t.role, &t.tenant, &t.user_id),
            )
        })
        .collect();
    store
        .write(&records)
        .context("the token is revoked, but its audit record could not be written")?;
    for t in &revoked {
        eprintln!("revoked {} token {} ({})", t.role.as_str(), t.id, t.name);
    }
    Ok(())
}

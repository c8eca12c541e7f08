//! The `hearth` command: run the server, manage accounts, check the setup, list supported XEPs.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hearth_core::accounts::{self, AccountError};
use hearth_core::config::{Config, LogFormat};
use hearth_core::module::{CORE_SPECS, Registrar};

mod check;

#[derive(Parser)]
#[command(name = "hearth", version, about = "A self-hosted XMPP server")]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded default: domain localhost, data in ./data.
    #[arg(long, short, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server in the foreground (the default command).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Administer the running server (through its control socket, data_dir/control.sock): who
    /// is online, announcements, sessions, disabled accounts, the message of the day.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Invite people to register an account from their app (XEP-0401), without passwords
    /// passing through you: works on the database directly, like `user`.
    Invite {
        #[command(subcommand)]
        action: InviteAction,
    },
    /// Check the configuration, the certificate and the DNS records.
    Check {
        /// Ask this DNS server (IP or IP:PORT) instead of the system's resolvers, e.g. a public
        /// resolver to see what clients on the internet see.
        #[arg(long)]
        dns_server: Option<String>,
    },
    /// List the specifications (RFCs and XEPs) hearth implements.
    Xeps {
        /// Print a DOAP (RDF/XML) description instead of a table.
        #[arg(long)]
        doap: bool,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account. The password is asked on the terminal, or read from the first line of
    /// standard input; with --stdin, read "user password" lines (bulk provisioning).
    Add {
        /// Username (the part before @) or full address.
        user: Option<String>,
        #[arg(long)]
        stdin: bool,
    },
    /// Erase an account and all its data: roster, archive, offline messages, uploaded files,
    /// PEP, vCard, private data, push, blocklist, FAST tokens, room affiliations and nicknames.
    /// Its sessions on the running server end.
    #[command(alias = "del")]
    Delete {
        user: String,
        /// Disable the account now and erase it after this many days (undo with --cancel).
        #[arg(long, conflicts_with = "cancel")]
        grace_days: Option<u64>,
        /// Cancel a scheduled erasure and enable the account again.
        #[arg(long)]
        cancel: bool,
    },
    /// Print everything held about an account as XEP-0227 XML (no password material).
    Export {
        user: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Set a new password (read like `add`).
    Passwd { user: String },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum InviteAction {
    /// Create an invitation and print its page's link, its xmpp: link and a QR code of it.
    Create {
        /// How many accounts it may create (with --contact, a subscription request that
        /// carries it counts as one).
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Days it stays valid (default: modules.invite.lifetime_secs).
        #[arg(long)]
        expires: Option<u64>,
        /// The username the account gets; an existing account's sets a new password for it.
        #[arg(long)]
        user: Option<String>,
        /// An account that becomes a mutual contact of each account created; without --user,
        /// also of an existing account that sends the token with a subscription request.
        #[arg(long)]
        contact: Option<String>,
        /// A note for the list: for whom, why.
        #[arg(long)]
        note: Option<String>,
    },
    /// List the invitations not swept yet (expired ones go within the hour).
    List,
    /// Withdraw an invitation: it can no longer be used and its page says so.
    Revoke { token: String },
}

#[derive(Subcommand)]
enum AdminAction {
    /// List the commands the server offers (any of them runs with `run`).
    Commands,
    /// List the users online.
    Online,
    /// Send a message to every session online.
    Announce { text: String },
    /// End the sessions of an account, or one session given a full address (user@domain/resource).
    Kick { user: String },
    /// Disable an account: its sessions end and it cannot log in until enabled again.
    Disable { user: String },
    /// Enable a disabled account again.
    Enable { user: String },
    /// Set (and send to the sessions online) or delete the message of the day, which each new
    /// session gets.
    Motd {
        #[command(subcommand)]
        action: MotdAction,
    },
    /// Run a command by its node, with its form's fields as VAR=VALUE (repeat a VAR for
    /// several values).
    Run { node: String, fields: Vec<String> },
}

#[derive(Subcommand)]
enum MotdAction {
    Set { text: String },
    Delete,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hearth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let config = Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            init_logging(&config);
            runtime.block_on(serve(config))?;
            Ok(true)
        }
        Command::User { action } => {
            // Erasures and exports are logged on hearth::audit.
            init_logging(&config);
            runtime.block_on(user(config, action))
        }
        Command::Admin { action } => runtime.block_on(admin(config, action)),
        Command::Invite { action } => runtime.block_on(invite(config, action)),
        Command::Check { dns_server } => {
            let dns_server = dns_server
                .map(|s| check::parse_dns_server(&s))
                .transpose()?;
            runtime.block_on(check::run(&config, cli.config.as_deref(), dns_server))
        }
        Command::Xeps { doap } => {
            xeps(&config, doap)?;
            Ok(true)
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn load_modules(config: &Config) -> anyhow::Result<hearth_core::module::Registrations> {
    let mut reg = Registrar::new(config);
    hearth_modules::load_all(&mut reg)?;
    Ok(reg.finish())
}

async fn open_store(config: &Config) -> anyhow::Result<hearth_store::Store> {
    let path = config.sqlite_path();
    hearth_store::Store::open(&path, Default::default())
        .with_context(|| format!("cannot open the database {}", path.display()))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create data_dir {} — check its permissions",
            config.data_dir.display()
        )
    })?;
    let regs = load_modules(&config)?;
    let tls = hearth_core::tls::Tls::load(&config)?;
    let store = open_store(&config).await?;
    tracing::info!(
        domain = %config.domain,
        data_dir = %config.data_dir.display(),
        modules = ?regs.loaded,
        version = env!("CARGO_PKG_VERSION"),
        "hearth starting"
    );
    let server = hearth_core::server::Server::new(config, store, tls, regs)?;
    Arc::clone(&server).run().await
}

/// Reads a password: from the terminal without echo is not available without extra crates, so
/// the first line of standard input is used (pipe it, or type it).
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password given on standard input");
    Ok(password)
}

async fn user(config: Config, action: UserAction) -> anyhow::Result<bool> {
    let store = open_store(&config).await?;
    let domain = config.domain.clone();
    let iterations = config.auth.scram_iterations;
    let result = match action {
        UserAction::Add {
            user: None,
            stdin: true,
        } => {
            let mut accounts_in = Vec::new();
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let (user, password) = line
                    .split_once(' ')
                    .with_context(|| format!("line {}: expected \"user password\"", n + 1))?;
                accounts_in.push((
                    accounts::normalise_username(&domain, user)?,
                    password.to_string(),
                ));
            }
            let total = accounts_in.len();
            let created = accounts::create_many(&store, accounts_in, iterations).await?;
            println!(
                "created {created} of {total} accounts ({} existed already)",
                total - created
            );
            Ok(())
        }
        UserAction::Add {
            user: Some(user),
            stdin: false,
        } => {
            let user = accounts::normalise_username(&domain, &user)?;
            let password = read_password()?;
            accounts::create(&store, &user, &password, iterations)
                .await
                .map(|()| println!("created {user}@{domain}"))
        }
        UserAction::Add { .. } => anyhow::bail!("give either a username or --stdin"),
        UserAction::Delete {
            user,
            grace_days,
            cancel,
        } => {
            let user = accounts::normalise_username(&domain, &user)?;
            delete(&config, &store, &user, grace_days, cancel).await
        }
        UserAction::Export { user, output } => {
            let user = accounts::normalise_username(&domain, &user)?;
            export(&config, &store, &user, output.as_deref()).await
        }
        UserAction::Passwd { user } => {
            let user = accounts::normalise_username(&domain, &user)?;
            let password = read_password()?;
            accounts::set_password(&store, &user, &password, iterations)
                .await
                .map(|()| println!("password changed for {user}@{domain}"))
        }
        UserAction::List => {
            for user in store.list_accounts().await? {
                println!("{user}@{domain}");
            }
            Ok(())
        }
    };
    store.close().await;
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("hearth: {e}");
            Ok(false)
        }
    }
}

/// Who made a change from the command line, for the audit log.
const CONSOLE: &str = "console";

/// Erases the account now, schedules its erasure, or cancels that; then ends its sessions on
/// the running server.
async fn delete(
    config: &Config,
    store: &hearth_store::Store,
    user: &str,
    grace_days: Option<u64>,
    cancel: bool,
) -> Result<(), AccountError> {
    use hearth_modules::adhoc::AUDIT;
    let account = format!("{user}@{}", config.domain);
    if cancel {
        return match store.account_cancel_erasure(user).await? {
            true => {
                tracing::info!(target: AUDIT, by = CONSOLE, %account, "account erasure cancelled");
                println!("{account}: erasure cancelled, the account is enabled again");
                Ok(())
            }
            false => Err(AccountError::Other(anyhow::anyhow!(
                "{account} is not scheduled for erasure"
            ))),
        };
    }
    match grace_days {
        Some(days) => {
            if days > 36_500 {
                return Err(anyhow::anyhow!("--grace-days must be under 100 years").into());
            }
            let at = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
            store.account_schedule_erasure(user, at).await?;
            let at = hearth_core::datetime::format(at);
            tracing::info!(target: AUDIT, by = CONSOLE, %account, erase_at = %at, "account disabled and scheduled for erasure");
            println!(
                "{account}: disabled; the running server erases it at {at} (undo with --cancel)"
            );
        }
        None => {
            let erased = hearth_modules::gdpr::erase(store, config, user).await?;
            tracing::info!(target: AUDIT, by = CONSOLE, %account, files = erased.files, "account erased");
            println!(
                "erased {account} and all its data ({} uploaded files)",
                erased.files
            );
        }
    }
    end_sessions(config, &account).await;
    Ok(())
}

/// Ends the account's sessions when the server runs (its control socket exists), so an erased
/// or disabled account stops chatting at once.
async fn end_sessions(config: &Config, account: &str) {
    use hearth_modules::adhoc::control::{self, Request, Response};
    if !control::socket_path(config).exists() {
        return;
    }
    let request = Request::Run {
        node: "http://jabber.org/protocol/admin#end-user-session".into(),
        fields: [("accountjids".to_string(), vec![account.to_string()])].into(),
    };
    match control::call(config, &request).await {
        Ok(Response::Completed { .. }) => {}
        Ok(other) => {
            eprintln!("warning: the server did not end the sessions of {account}: {other:?}")
        }
        Err(e) => eprintln!("warning: cannot end the sessions of {account}: {e:#}"),
    }
}

/// Writes the account's data as XEP-0227 XML to `output` or standard output.
async fn export(
    config: &Config,
    store: &hearth_store::Store,
    user: &str,
    output: Option<&std::path::Path>,
) -> Result<(), AccountError> {
    let account = format!("{user}@{}", config.domain);
    let data = store
        .account_data(user, &account)
        .await?
        .ok_or(AccountError::NotFound)?;
    let xml = hearth_modules::gdpr::export::document(&config.domain, user, &data, |id, name| {
        hearth_modules::upload::file_url(config, id, name)
    });
    match output {
        Some(path) => {
            std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => print!("{xml}"),
    }
    let to = output.map_or("standard output".into(), |p| p.display().to_string());
    tracing::info!(target: hearth_modules::adhoc::AUDIT, by = CONSOLE, %account, %to, "account data exported");
    Ok(())
}

async fn invite(config: Config, action: InviteAction) -> anyhow::Result<bool> {
    use hearth_modules::invite::{self, NewInvitation, Standing};
    let Some(settings) = hearth_core::module::module_config::<invite::Invite>(&config)? else {
        anyhow::bail!("invitations are disabled (modules.invite.enabled = false)");
    };
    anyhow::ensure!(
        config.auth.ldap.is_none(),
        "invitations are off with auth.ldap: accounts come from the directory"
    );
    let store = open_store(&config).await?;
    let domain = config.domain.clone();
    let result = match action {
        InviteAction::Create {
            uses,
            expires,
            user,
            contact,
            note,
        } => {
            let normalise = |name: Option<String>| {
                name.map(|n| accounts::normalise_username(&domain, &n))
                    .transpose()
            };
            let lifetime = match expires {
                Some(days) => std::time::Duration::from_secs(days.saturating_mul(86_400)),
                None => std::time::Duration::from_secs(settings.lifetime_secs),
            };
            let request = NewInvitation {
                creator: "command line".into(),
                inviter: normalise(contact)?,
                username: normalise(user)?,
                uses,
                lifetime,
                note,
            };
            match invite::create(&store, request).await {
                Ok(invitation) => {
                    print_invitation(&config, &settings, &invitation);
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        }
        InviteAction::List => {
            let now = std::time::SystemTime::now();
            for i in store.invitations().await? {
                let expires = hearth_core::datetime::format(i.expires);
                let standing = Standing::of(&i, now).describe();
                let account = match (&i.username, i.reset) {
                    (Some(user), true) => format!("{user} (password reset)"),
                    (Some(user), false) => user.clone(),
                    (None, _) => "any username".into(),
                };
                println!(
                    "{}\t{standing}\t{}/{} uses left\tuntil {expires}\t{account}\tby {}{}{}",
                    i.token,
                    i.uses_left,
                    i.max_uses,
                    i.creator,
                    i.inviter
                        .map(|c| format!("\tcontact {c}"))
                        .unwrap_or_default(),
                    i.note.map(|n| format!("\t{n}")).unwrap_or_default(),
                );
            }
            Ok(())
        }
        InviteAction::Revoke { token } => match store.invitation_revoke(&token).await? {
            true => {
                println!("revoked; its page now says it was withdrawn");
                Ok(())
            }
            false => Err(anyhow::anyhow!("no such invitation: {token}")),
        },
    };
    store.close().await;
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("hearth: {e}");
            Ok(false)
        }
    }
}

fn print_invitation(
    config: &Config,
    settings: &hearth_modules::invite::Config,
    invitation: &hearth_store::Invitation,
) {
    use hearth_modules::invite;
    let domain = &config.domain;
    let uri = invite::uri(domain, invitation);
    let whom = match (&invitation.username, invitation.reset) {
        (Some(user), true) => format!("a new password for {user}@{domain}"),
        (Some(user), false) => format!("the account {user}@{domain}"),
        (None, _) => format!("an account on {domain}"),
    };
    println!(
        "Invitation to {whom}: {} use(s), valid until {}",
        invitation.max_uses,
        hearth_core::datetime::format(invitation.expires)
    );
    if let Some(base) = invite::landing_base(config, settings) {
        println!(
            "Send this link:  {}",
            invite::landing_url(&base, &invitation.token)
        );
    }
    println!("XMPP link:       {uri}");
    if let Some(qr) = invite::qr_terminal(&uri) {
        println!("Or scan this with the app:\n{qr}");
    }
}

/// Runs an administration command on the running server and prints what it answers.
async fn admin(config: Config, action: AdminAction) -> anyhow::Result<bool> {
    use hearth_modules::adhoc::control::{self, Request, Response};
    const ADMIN: &str = "http://jabber.org/protocol/admin#";
    // A bare username is an account of this server.
    let account = |user: String| match user.contains('@') {
        true => user,
        false => format!("{user}@{}", config.domain),
    };
    let run = |command: &str, fields: &[(&str, Vec<String>)]| Request::Run {
        node: format!("{ADMIN}{command}"),
        fields: fields
            .iter()
            .map(|(var, values)| (var.to_string(), values.clone()))
            .collect(),
    };
    let lines = |text: String| text.lines().map(str::to_string).collect::<Vec<_>>();
    let request = match action {
        AdminAction::Commands => Request::List,
        AdminAction::Online => run(
            "get-online-users-list",
            &[("max_items", vec!["none".into()])],
        ),
        AdminAction::Announce { text } => run("announce", &[("announcement", lines(text))]),
        AdminAction::Kick { user } => {
            run("end-user-session", &[("accountjids", vec![account(user)])])
        }
        AdminAction::Disable { user } => {
            run("disable-user", &[("accountjids", vec![account(user)])])
        }
        AdminAction::Enable { user } => {
            run("reenable-user", &[("accountjids", vec![account(user)])])
        }
        AdminAction::Motd {
            action: MotdAction::Set { text },
        } => run("set-motd", &[("motd", lines(text))]),
        AdminAction::Motd {
            action: MotdAction::Delete,
        } => run("delete-motd", &[]),
        AdminAction::Run { node, fields } => {
            let mut values = std::collections::BTreeMap::<String, Vec<String>>::new();
            for field in fields {
                let (var, value) = field
                    .split_once('=')
                    .with_context(|| format!("{field:?}: fields are VAR=VALUE"))?;
                values.entry(var.into()).or_default().push(value.into());
            }
            Request::Run {
                node,
                fields: values,
            }
        }
    };
    match control::call(&config, &request).await? {
        Response::Commands(commands) => {
            for c in commands {
                println!("{}\t{}", c.node, c.name);
            }
            Ok(true)
        }
        Response::Completed { notes, fields } => {
            use hearth_modules::adhoc::NoteKind;
            for note in &notes {
                match note.kind {
                    NoteKind::Info => println!("{}", note.text),
                    NoteKind::Warn => eprintln!("warning: {}", note.text),
                    NoteKind::Error => eprintln!("hearth: {}", note.text),
                }
            }
            // One field (a list of users): its values, one per line; several: labelled.
            let single = fields.len() == 1;
            for f in fields {
                if single {
                    f.values.iter().for_each(|v| println!("{v}"));
                } else {
                    println!("{}: {}", f.label.unwrap_or(f.var), f.values.join(", "));
                }
            }
            Ok(notes.iter().all(|n| n.kind != NoteKind::Error))
        }
        Response::Error { condition, text } => {
            eprintln!(
                "hearth: the server refused: {condition}{}",
                text.map(|t| format!(" ({t})")).unwrap_or_default()
            );
            Ok(false)
        }
    }
}

fn xeps(config: &Config, doap: bool) -> anyhow::Result<()> {
    let regs = load_modules(config)?;
    let mut specs: Vec<(&str, hearth_core::module::Spec)> =
        CORE_SPECS.iter().map(|s| ("core", *s)).collect();
    specs.extend(regs.specs.iter().copied());
    specs.sort_by(|a, b| a.1.id.cmp(b.1.id).then(a.0.cmp(b.0)));
    if doap {
        print!("{}", hearth_core::module::doap(&specs));
    } else {
        println!("| Specification | Version | Status | Module | Notes |\n|---|---|---|---|---|");
        for (module, s) in &specs {
            println!(
                "| {} | {} | {} | {} | {} |",
                s.id,
                s.version,
                s.status.as_str(),
                module,
                s.note
            );
        }
    }
    Ok(())
}

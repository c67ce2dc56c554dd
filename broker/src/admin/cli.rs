//! `mqadmin`'s command line: the sub-command table (RocketMQ's names and flags), a small option
//! parser (`-x value`, `--long value`, `--long=value`), help texts, and the mapping of outcomes to
//! output and exit codes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use super::commands;

/// One flag of a sub-command.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub short: char,
    pub long: &'static str,
    /// Takes a value (`-t TopicTest`); otherwise a switch.
    pub value: bool,
    pub required: bool,
    pub help: &'static str,
}

const fn opt(short: char, long: &'static str, help: &'static str) -> Opt {
    Opt { short, long, value: true, required: false, help }
}

const fn req(short: char, long: &'static str, help: &'static str) -> Opt {
    Opt { short, long, value: true, required: true, help }
}

const fn switch(short: char, long: &'static str, help: &'static str) -> Opt {
    Opt { short, long, value: false, required: false, help }
}

/// A sub-command: its name, one line about it, its flags.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub about: &'static str,
    pub options: &'static [Opt],
}

/// The sub-commands, with RocketMQ 4.9's flags.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "clusterList",
        about: "List all of clusters",
        options: &[
            switch('m', "moreStats", "Print more stats"),
            opt('i', "interval", "specify intervals numbers, it is in seconds (ignored: one round)"),
        ],
    },
    Spec {
        name: "topicList",
        about: "Fetch all topic list from name server",
        options: &[switch('c', "clusterModel", "clusterModel")],
    },
    Spec {
        name: "topicRoute",
        about: "Examine topic route info",
        options: &[req('t', "topic", "topic name"), switch('l', "list", "Use list format to print data")],
    },
    Spec { name: "topicStatus", about: "Examine topic Status info", options: &[req('t', "topic", "topic name")] },
    Spec {
        name: "updateTopic",
        about: "Update or create topic",
        options: &[
            opt('b', "brokerAddr", "create topic to which broker"),
            opt('c', "clusterName", "create topic to which cluster"),
            req('t', "topic", "topic name"),
            opt('r', "readQueueNums", "set read queue nums"),
            opt('w', "writeQueueNums", "set write queue nums"),
            opt('p', "perm", "set topic's permission(2|4|6), intro[2:W 4:R; 6:RW]"),
            opt('o', "order", "set topic's order(true|false)"),
            opt('u', "unit", "is unit topic (true|false)"),
            opt('s', "hasUnitSub", "has unit sub (true|false)"),
        ],
    },
    Spec {
        name: "deleteTopic",
        about: "Delete topic from broker and NameServer.",
        options: &[req('t', "topic", "topic name"), req('c', "clusterName", "delete topic from which cluster")],
    },
    Spec {
        name: "updateSubGroup",
        about: "Update or create subscription group",
        options: &[
            opt('b', "brokerAddr", "create subscription group to which broker"),
            opt('c', "clusterName", "create subscription group to which cluster"),
            req('g', "groupName", "consumer group name"),
            opt('s', "consumeEnable", "consume enable"),
            opt('m', "consumeFromMinEnable", "from min offset"),
            opt('d', "consumeBroadcastEnable", "broadcast"),
            opt('q', "retryQueueNums", "retry queue nums"),
            opt('r', "retryMaxTimes", "retry max times"),
            opt('i', "brokerId", "consumer from which broker id"),
            opt('w', "whichBrokerWhenConsumeSlowly", "which broker id when consume slowly"),
            opt('a', "notifyConsumerIdsChanged", "notify consumerId changed"),
        ],
    },
    Spec {
        name: "deleteSubGroup",
        about: "Delete subscription group from broker.",
        options: &[
            opt('b', "brokerAddr", "delete subscription group from which broker"),
            opt('c', "clusterName", "delete subscription group from which cluster"),
            req('g', "groupName", "subscription group name"),
            opt('r', "removeOffset", "remove offset"),
        ],
    },
    Spec {
        name: "consumerProgress",
        about: "Query consumers's progress, speed",
        options: &[
            opt('g', "groupName", "consumer group name"),
            opt('t', "topicName", "topic name"),
            opt('s', "showClientIP", "Show Client IP per Queue (always shown)"),
        ],
    },
    Spec {
        name: "consumerConnection",
        about: "Query consumer's socket connection, client version and subscription",
        options: &[req('g', "consumerGroup", "consumer group name"), opt('b', "brokerAddr", "broker address")],
    },
    Spec {
        name: "brokerStatus",
        about: "Fetch broker runtime status data",
        options: &[opt('b', "brokerAddr", "Broker address"), opt('c', "clusterName", "which cluster")],
    },
    Spec {
        name: "queryMsgById",
        about: "Query Message by Id",
        options: &[
            req('i', "msgId", "Message Id (offset message id; several separated by ,)"),
            opt('g', "consumerGroup", "consumer group name (not supported: no resend)"),
            opt('d', "clientId", "The consumer's client id (not supported: no resend)"),
            opt('s', "sendMessage", "resend message (not supported)"),
            opt('u', "unitName", "unit name"),
        ],
    },
    Spec {
        name: "queryMsgByKey",
        about: "Query Message by Key",
        options: &[req('t', "topic", "topic name"), req('k', "msgKey", "Message Key")],
    },
    Spec {
        name: "queryMsgByOffset",
        about: "Query Message by offset",
        options: &[
            req('t', "topic", "topic name"),
            req('b', "brokerName", "Broker Name"),
            req('i', "queueId", "Queue Id"),
            req('o', "offset", "Queue Offset"),
        ],
    },
    Spec {
        name: "resetOffsetByTime",
        about: "Reset consumer offset by timestamp(without client restart).",
        options: &[
            req('g', "group", "set the consumer group"),
            req('t', "topic", "set the topic"),
            req('s', "timestamp", "set the timestamp[now|currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]"),
            opt('f', "force", "set the force rollback by timestamp switch[true|false]"),
            switch('c', "cplus", "reset c++ client offset"),
        ],
    },
    Spec {
        name: "sendMessage",
        about: "Send a message",
        options: &[
            req('t', "topic", "Topic name"),
            req('p', "body", "UTF-8 string format of the message body"),
            opt('k', "key", "Message keys"),
            opt('c', "tags", "Message tags"),
            opt('b', "broker", "Send message to target broker"),
            opt('i', "qid", "Send message to target queue"),
            opt('m', "msgTraceEnable", "Message Trace Enable, Default: false"),
        ],
    },
    Spec {
        name: "consumeMessage",
        about: "Consume message",
        options: &[
            req('t', "topic", "Topic name"),
            opt('b', "brokerName", "Broker name"),
            opt('i', "queueId", "Queue Id"),
            opt('o', "offset", "Queue offset"),
            opt('g', "consumerGroup", "Consumer group name"),
            opt('s', "beginTimestamp", "Begin timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]"),
            opt('e', "endTimestamp", "End timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]"),
            opt('c', "MessageNumber", "Number of message to be consumed"),
        ],
    },
    Spec {
        name: "getBrokerConfig",
        about: "Get broker config by cluster or special broker!",
        options: &[opt('b', "brokerAddr", "get which broker"), opt('c', "clusterName", "get which cluster")],
    },
    // Wasm plugins (ours; `admin::plugin`): two words, `mqadmin plugin deploy ...`.
    Spec {
        name: "plugin deploy",
        about: "Deploy (or replace) a Wasm plugin component",
        options: &[
            opt('b', "brokerAddr", "to which broker"),
            opt('c', "clusterName", "to every master of which cluster"),
            req('p', "name", "deployment name"),
            req('f', "file", "the component (.wasm)"),
            opt('r', "role", "expected role: filter, router or transaction-checker"),
            opt('F', "paramsFile", "parameters file: name=value lines"),
            opt('a', "params", "parameters as a JSON object of strings"),
        ],
    },
    Spec {
        name: "plugin list",
        about: "List deployed Wasm plugins and their bindings",
        options: &[opt('b', "brokerAddr", "which broker"), opt('c', "clusterName", "every master of which cluster")],
    },
    Spec {
        name: "plugin describe",
        about: "Show a Wasm plugin, its bindings and counters",
        options: &[
            opt('b', "brokerAddr", "which broker"),
            opt('c', "clusterName", "every master of which cluster"),
            req('p', "name", "deployment name"),
        ],
    },
    Spec {
        name: "plugin bind",
        about: "Bind a plugin: filter to (group, topic), router to topic, checker to producer group",
        options: &[
            opt('b', "brokerAddr", "which broker"),
            opt('c', "clusterName", "every master of which cluster"),
            req('p', "name", "deployment name"),
            req('r', "role", "filter, router or transaction-checker"),
            opt('g', "group", "consumer group (filter) or producer group (checker)"),
            opt('t', "topic", "topic (filter, router)"),
            switch('o', "failOpen", "filter only: deliver unfiltered when the plugin fails"),
        ],
    },
    Spec {
        name: "plugin unbind",
        about: "Remove the plugin binding at a place",
        options: &[
            opt('b', "brokerAddr", "which broker"),
            opt('c', "clusterName", "every master of which cluster"),
            req('r', "role", "filter, router or transaction-checker"),
            opt('g', "group", "consumer group (filter) or producer group (checker)"),
            opt('t', "topic", "topic (filter, router)"),
        ],
    },
    Spec {
        name: "plugin remove",
        about: "Remove an unbound Wasm plugin",
        options: &[
            opt('b', "brokerAddr", "which broker"),
            opt('c', "clusterName", "every master of which cluster"),
            req('p', "name", "deployment name"),
        ],
    },
    Spec {
        name: "plugin logs",
        about: "Print a Wasm plugin's recent log lines",
        options: &[
            opt('b', "brokerAddr", "which broker"),
            opt('c', "clusterName", "every master of which cluster"),
            req('p', "name", "deployment name"),
            opt('l', "last", "how many lines (default 100)"),
        ],
    },
];

/// What went wrong, and the exit code it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Exit 2: bad command line.
    Usage(String),
    /// Exit 3: the thing asked for does not exist.
    NotFound(String),
    /// Exit 1: a server refused, or the connection failed.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::NotFound(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<crate::client::Error> for CliError {
    fn from(e: crate::client::Error) -> CliError {
        match e {
            crate::client::Error::NoRoute { .. } => CliError::NotFound(e.to_string()),
            crate::client::Error::NoNameServer => {
                CliError::Usage("no name server address: pass -n host:port or set NAMESRV_ADDR".into())
            }
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// A command's result: the table text and the same data as JSON.
#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub json: Value,
}

/// Parsed options of one sub-command.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<char, String>,
    switches: HashSet<char>,
    pub namesrv: Option<String>,
    pub json: bool,
    pub help: bool,
}

impl Args {
    /// A flag's value, trimmed as RocketMQ's tools trim it.
    pub fn get(&self, short: char) -> Option<&str> {
        self.values.get(&short).map(|s| s.trim())
    }

    /// A required flag's value (the parser has checked it is present).
    pub fn need(&self, short: char) -> Result<&str, CliError> {
        self.get(short).ok_or_else(|| CliError::Usage(format!("missing -{short}")))
    }

    pub fn has(&self, short: char) -> bool {
        self.switches.contains(&short) || self.values.contains_key(&short)
    }

    /// A flag parsed as `T`, with the flag named in the error.
    pub fn parse<T: std::str::FromStr>(&self, short: char) -> Result<Option<T>, CliError> {
        match self.get(short) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| CliError::Usage(format!("-{short}: invalid value {v:?}"))),
        }
    }

    /// Java's `Boolean.parseBoolean`: "true" (any case) is true, anything else false.
    pub fn bool(&self, short: char) -> Option<bool> {
        self.get(short).map(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Parses the words after the sub-command name.
///
/// # Errors
/// [`CliError::Usage`] for an unknown flag, a missing value or a missing required flag.
pub fn parse_args(spec: &Spec, words: &[String]) -> Result<Args, CliError> {
    let mut args = Args::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        i += 1;
        let (name, inline) = match w.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (rest, None),
            },
            None => match w.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (rest, None),
                _ => return Err(CliError::Usage(format!("{}: unexpected argument {w:?}", spec.name))),
            },
        };
        let long = w.starts_with("--");
        match name {
            "json" if long => {
                args.json = true;
                continue;
            }
            "h" | "help" => {
                args.help = true;
                continue;
            }
            "n" | "namesrvAddr" => {
                let v = take_value(spec, name, inline, words, &mut i)?;
                args.namesrv = Some(v);
                continue;
            }
            _ => {}
        }
        let found = spec
            .options
            .iter()
            .find(|o| if long { o.long == name } else { name.chars().count() == 1 && name.starts_with(o.short) });
        let Some(o) = found else {
            return Err(CliError::Usage(format!(
                "{}: unknown option {w:?} (see mqadmin help {})",
                spec.name, spec.name
            )));
        };
        if o.value {
            let v = take_value(spec, name, inline, words, &mut i)?;
            args.values.insert(o.short, v);
        } else {
            args.switches.insert(o.short);
        }
    }
    if !args.help {
        for o in spec.options.iter().filter(|o| o.required) {
            if !args.values.contains_key(&o.short) {
                return Err(CliError::Usage(format!(
                    "{}: missing required option -{} (--{}): {}",
                    spec.name, o.short, o.long, o.help
                )));
            }
        }
    }
    Ok(args)
}

fn take_value(
    spec: &Spec,
    name: &str,
    inline: Option<String>,
    words: &[String],
    i: &mut usize,
) -> Result<String, CliError> {
    if let Some(v) = inline {
        return Ok(v);
    }
    match words.get(*i) {
        Some(v) => {
            *i += 1;
            Ok(v.clone())
        }
        None => Err(CliError::Usage(format!("{}: option {name} needs a value", spec.name))),
    }
}

/// The help text of one sub-command.
pub fn command_help(spec: &Spec) -> String {
    let mut s = format!("usage: mqadmin {} [-n <namesrvAddr>] [--json]", spec.name);
    for o in spec.options {
        let v = if o.value { format!(" <{}>", o.long) } else { String::new() };
        if o.required {
            s.push_str(&format!(" -{}{v}", o.short));
        } else {
            s.push_str(&format!(" [-{}{v}]", o.short));
        }
    }
    s.push_str(&format!("\n{}\n", spec.about));
    s.push_str(&format!("  {:<32}{}\n", "-h,--help", "Print help"));
    s.push_str(&format!("  {:<32}{}\n", "--json", "Print the result as JSON"));
    s.push_str(&format!(
        "  {:<32}{}\n",
        "-n,--namesrvAddr <arg>",
        "Name server address list, eg: '192.168.0.1:9876;192.168.0.2:9876' (default: NAMESRV_ADDR)"
    ));
    for o in spec.options {
        let flag =
            if o.value { format!("-{},--{} <arg>", o.short, o.long) } else { format!("-{},--{}", o.short, o.long) };
        let req = if o.required { " (required)" } else { "" };
        s.push_str(&format!("  {flag:<32}{}{req}\n", o.help));
    }
    s
}

/// The list of sub-commands.
pub fn general_help() -> String {
    let mut s = String::from("usage: mqadmin <command> [args]\nThe most commonly used mqadmin commands are:\n");
    for c in COMMANDS {
        s.push_str(&format!("   {:<20} {}\n", c.name, c.about));
    }
    s.push_str("\nSee 'mqadmin help <command>' for more information on a specific command.\n");
    s.push_str("Every command takes -n <namesrvAddr> (or NAMESRV_ADDR) and --json.\n");
    s.push_str("Exit codes: 0 ok, 1 server or connection failure, 2 usage error, 3 not found.\n");
    s
}

/// Runs `mqadmin` with `argv` (without the program name): prints the result to stdout, errors to
/// stderr, and returns the exit code.
pub async fn run(mut argv: Vec<String>) -> i32 {
    // `plugin <verb>` is one sub-command of two words.
    if argv.first().is_some_and(|w| w == "plugin") && argv.len() > 1 {
        let verb = argv.remove(1);
        argv[0] = format!("plugin {verb}");
    }
    let Some(name) = argv.first() else {
        print!("{}", general_help());
        return 2;
    };
    if name == "help" || name == "-h" || name == "--help" {
        let topic = argv[1..].iter().take(2).cloned().collect::<Vec<_>>().join(" ");
        let spec = COMMANDS
            .iter()
            .find(|c| c.name == topic)
            .or_else(|| argv.get(1).and_then(|n| COMMANDS.iter().find(|c| c.name == n)));
        match spec {
            Some(spec) => print!("{}", command_help(spec)),
            None => print!("{}", general_help()),
        }
        return 0;
    }
    let Some(spec) = COMMANDS.iter().find(|c| c.name == name) else {
        eprintln!("mqadmin: unknown command {name:?}");
        eprint!("{}", general_help());
        return 2;
    };
    let args = match parse_args(spec, &argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mqadmin: {e}");
            eprint!("{}", command_help(spec));
            return e.exit_code();
        }
    };
    if args.help {
        print!("{}", command_help(spec));
        return 0;
    }
    match commands::execute(spec.name, &args).await {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.json).unwrap_or_default());
            } else {
                print!("{}", report.text);
            }
            0
        }
        Err(e) => {
            if args.json {
                let kind = match e {
                    CliError::Usage(_) => "usage",
                    CliError::NotFound(_) => "notFound",
                    CliError::Failed(_) => "failed",
                };
                println!("{}", serde_json::json!({"error": e.to_string(), "kind": kind}));
            }
            eprintln!("mqadmin {}: {e}", spec.name);
            e.exit_code()
        }
    }
}

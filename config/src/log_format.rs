//! `[log] log_format`: which access-log line ringway writes, parsed once
//! at load. Pure: the engine's `access_log` renders it per request.
//!
//! - `"ringway"` (the default): nginx's `combined` plus `$request_time`
//!   (ringway's line until now, unchanged as a prefix), then
//!   ` "$upstream_addr" $upstream_connect_time $tunnel_close_reason
//!   $tunnel_bytes_from_client $tunnel_bytes_to_client`, so a tunnel's
//!   line shows its upstream, its bytes each way and why it closed ("-"
//!   where a line has no such field).
//! - `"combined"`: nginx's `combined` plus ` $request_time`, exactly the
//!   line ringway wrote before log formats existed.
//! - `"json"`: one JSON object per line (keys named as the variables).
//! - anything else: a custom format of `$name` / `${name}` variables and
//!   literal text, as nginx's `log_format`; a `$` not followed by a name is
//!   literal; an unknown variable is an error naming it.

/// A parsed `log_format`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// nginx `combined` + ` $request_time`.
    Combined,
    /// `Combined` + upstream and tunnel fields (the default).
    #[default]
    Ringway,
    Json,
    Custom(Vec<LogPart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPart {
    Literal(String),
    Var(LogVar),
}

/// A variable of a custom log format (nginx's names, plus ringway's
/// `tunnel_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogVar {
    RemoteAddr,
    RemotePort,
    /// Always "-" (no HTTP authentication).
    RemoteUser,
    /// The connection's peer address before real-IP substitution.
    RealipRemoteAddr,
    ProxyProtocolAddr,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    ServerProtocol,
    Status,
    BodyBytesSent,
    BytesSent,
    RequestLength,
    RequestTime,
    /// The connection's serial number.
    Connection,
    ConnectionRequests,
    Host,
    ServerName,
    ServerPort,
    Scheme,
    /// `$http_<name>`: a request header, name lowercased with '_' -> '-'.
    Http(String),
    UpstreamAddr,
    UpstreamStatus,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    UpstreamResponseTime,
    UpstreamBytesSent,
    UpstreamBytesReceived,
    /// Always "." (no pipelining is reported).
    Pipe,
    /// client | upstream | idle | drain | error; "-" for non-tunnels.
    TunnelCloseReason,
    TunnelBytesFromClient,
    TunnelBytesToClient,
    SslProtocol,
    SslServerName,
}

/// The request headers the built-in formats log.
const BUILTIN_HEADERS: [&str; 2] = ["referer", "user-agent"];

impl LogFormat {
    /// The request headers this format logs (lowercase names), so a
    /// tunnel can keep only those until its line is written.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        let (builtin, parts): (&[&str], &[LogPart]) = match self {
            LogFormat::Custom(parts) => (&[], parts),
            _ => (&BUILTIN_HEADERS, &[]),
        };
        builtin
            .iter()
            .copied()
            .chain(parts.iter().filter_map(|p| match p {
                LogPart::Var(LogVar::Http(h)) => Some(h.as_str()),
                _ => None,
            }))
    }

    /// Whether this format logs `var` (for a built-in format: whether one
    /// of its fields is that variable).
    pub fn uses(&self, var: &LogVar) -> bool {
        match self {
            LogFormat::Custom(parts) => parts
                .iter()
                .any(|p| matches!(p, LogPart::Var(v) if v == var)),
            LogFormat::Combined => COMBINED.contains(var),
            LogFormat::Ringway => COMBINED.contains(var) || RINGWAY_EXTRA.contains(var),
            LogFormat::Json => JSON.contains(var) || TUNNEL.contains(var),
        }
    }
}

const COMBINED: [LogVar; 6] = [
    LogVar::RemoteAddr,
    LogVar::TimeLocal,
    LogVar::Request,
    LogVar::Status,
    LogVar::BodyBytesSent,
    LogVar::RequestTime,
];
const RINGWAY_EXTRA: [LogVar; 5] = [
    LogVar::UpstreamAddr,
    LogVar::UpstreamConnectTime,
    LogVar::TunnelCloseReason,
    LogVar::TunnelBytesFromClient,
    LogVar::TunnelBytesToClient,
];
const JSON: [LogVar; 12] = [
    LogVar::TimeIso8601,
    LogVar::RemoteAddr,
    LogVar::RequestMethod,
    LogVar::RequestUri,
    LogVar::ServerProtocol,
    LogVar::Status,
    LogVar::BodyBytesSent,
    LogVar::RequestTime,
    LogVar::Host,
    LogVar::UpstreamAddr,
    LogVar::UpstreamStatus,
    LogVar::UpstreamConnectTime,
];
const TUNNEL: [LogVar; 3] = [
    LogVar::TunnelCloseReason,
    LogVar::TunnelBytesFromClient,
    LogVar::TunnelBytesToClient,
];

/// Parse a `log_format` value: a built-in name or a custom format;
/// `Err(name)` for an unknown variable or an unclosed `${`.
pub fn parse(s: &str) -> Result<LogFormat, String> {
    match s {
        "combined" => return Ok(LogFormat::Combined),
        "ringway" => return Ok(LogFormat::Ringway),
        "json" => return Ok(LogFormat::Json),
        _ => {}
    }
    let parts = crate::template::scan(s, variable)?
        .into_iter()
        .map(|p| match p {
            crate::template::Piece::Literal(l) => LogPart::Literal(l),
            crate::template::Piece::Var(v) => LogPart::Var(v),
        })
        .collect();
    Ok(LogFormat::Custom(parts))
}

fn variable(name: &str) -> Option<LogVar> {
    use LogVar::*;
    Some(match name {
        "remote_addr" => RemoteAddr,
        "remote_port" => RemotePort,
        "remote_user" => RemoteUser,
        "realip_remote_addr" => RealipRemoteAddr,
        "proxy_protocol_addr" => ProxyProtocolAddr,
        "time_local" => TimeLocal,
        "time_iso8601" => TimeIso8601,
        "msec" => Msec,
        "request" => Request,
        "request_method" => RequestMethod,
        "request_uri" => RequestUri,
        "uri" | "document_uri" => Uri,
        "args" | "query_string" => Args,
        "server_protocol" => ServerProtocol,
        "status" => Status,
        "body_bytes_sent" => BodyBytesSent,
        "bytes_sent" => BytesSent,
        "request_length" => RequestLength,
        "request_time" => RequestTime,
        "connection" => Connection,
        "connection_requests" => ConnectionRequests,
        "host" => Host,
        "server_name" => ServerName,
        "server_port" => ServerPort,
        "scheme" => Scheme,
        "upstream_addr" => UpstreamAddr,
        "upstream_status" => UpstreamStatus,
        "upstream_connect_time" => UpstreamConnectTime,
        "upstream_header_time" => UpstreamHeaderTime,
        "upstream_response_time" => UpstreamResponseTime,
        "upstream_bytes_sent" => UpstreamBytesSent,
        "upstream_bytes_received" => UpstreamBytesReceived,
        "pipe" => Pipe,
        "tunnel_close_reason" => TunnelCloseReason,
        "tunnel_bytes_from_client" => TunnelBytesFromClient,
        "tunnel_bytes_to_client" => TunnelBytesToClient,
        "ssl_protocol" => SslProtocol,
        "ssl_server_name" => SslServerName,
        _ => {
            let h = name.strip_prefix("http_")?;
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            Http(h.to_ascii_lowercase().replace('_', "-"))
        }
    })
}

/// Every variable name a log format takes (the tests of the parser and of
/// `ringway -T`'s writer walk it).
#[cfg(test)]
pub(crate) const VAR_NAMES: &[&str] = &[
    "remote_addr",
    "remote_port",
    "remote_user",
    "realip_remote_addr",
    "proxy_protocol_addr",
    "time_local",
    "time_iso8601",
    "msec",
    "request",
    "request_method",
    "request_uri",
    "uri",
    "args",
    "server_protocol",
    "status",
    "body_bytes_sent",
    "bytes_sent",
    "request_length",
    "request_time",
    "connection",
    "connection_requests",
    "host",
    "server_name",
    "server_port",
    "scheme",
    "http_referer",
    "http_user_agent",
    "upstream_addr",
    "upstream_status",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_time",
    "upstream_bytes_sent",
    "upstream_bytes_received",
    "pipe",
    "tunnel_close_reason",
    "tunnel_bytes_from_client",
    "tunnel_bytes_to_client",
    "ssl_protocol",
    "ssl_server_name",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(s: &str) -> Vec<LogPart> {
        match parse(s).unwrap() {
            LogFormat::Custom(p) => p,
            other => panic!("not custom: {other:?}"),
        }
    }

    #[test]
    fn built_in_names() {
        assert_eq!(parse("combined").unwrap(), LogFormat::Combined);
        assert_eq!(parse("ringway").unwrap(), LogFormat::Ringway);
        assert_eq!(parse("json").unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::default(), LogFormat::Ringway);
        // Only the exact name is a built-in.
        assert_eq!(custom(" json"), vec![LogPart::Literal(" json".into())]);
    }

    #[test]
    fn variables_braces_and_literals() {
        use LogVar::*;
        assert_eq!(
            custom(
                "$remote_addr - [$time_local] \"${request}\" ${status}x $http_X_Request_Id $ end$"
            ),
            vec![
                LogPart::Var(RemoteAddr),
                LogPart::Literal(" - [".into()),
                LogPart::Var(TimeLocal),
                LogPart::Literal("] \"".into()),
                LogPart::Var(Request),
                LogPart::Literal("\" ".into()),
                LogPart::Var(Status),
                LogPart::Literal("x ".into()),
                LogPart::Var(Http("x-request-id".into())),
                LogPart::Literal(" $ end$".into()),
            ]
        );
        assert_eq!(
            custom("é$pipe$msec"),
            vec![
                LogPart::Literal("é".into()),
                LogPart::Var(Pipe),
                LogPart::Var(Msec)
            ]
        );
        assert_eq!(custom(""), vec![]);
    }

    #[test]
    fn every_variable_parses() {
        for name in VAR_NAMES {
            let parts = custom(&format!("${name}"));
            assert!(matches!(parts[..], [LogPart::Var(_)]), "{name}");
        }
    }

    #[test]
    fn unknown_variables_are_named() {
        assert_eq!(parse("$remote_addr $nope").unwrap_err(), "nope");
        assert_eq!(parse("${statuss}").unwrap_err(), "statuss");
        assert_eq!(parse("${status").unwrap_err(), "{status");
        assert_eq!(parse("${}").unwrap_err(), "");
        assert_eq!(parse("$http_").unwrap_err(), "http_");
        assert_eq!(parse("${http_a-b}").unwrap_err(), "http_a-b");
    }

    #[test]
    fn headers_and_uses() {
        let f = parse("$http_x_foo $status $http_referer").unwrap();
        assert_eq!(f.headers().collect::<Vec<_>>(), ["x-foo", "referer"]);
        assert!(f.uses(&LogVar::Status));
        assert!(!f.uses(&LogVar::UpstreamAddr));
        assert_eq!(
            LogFormat::Combined.headers().collect::<Vec<_>>(),
            ["referer", "user-agent"]
        );
        assert!(LogFormat::Ringway.uses(&LogVar::TunnelCloseReason));
        assert!(!LogFormat::Combined.uses(&LogVar::TunnelCloseReason));
        assert!(LogFormat::Json.uses(&LogVar::TimeIso8601));
    }
}

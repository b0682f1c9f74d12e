//! `[telemetry]`: traces of `paddock serve` (and the other commands) sent to
//! an OpenTelemetry collector over OTLP/HTTP. Without an endpoint here or in
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, no
//! exporter is built and spans cost nothing.

use serde::Deserialize;

/// The service name spans carry unless `telemetry.service-name` or
/// `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "paddock";

/// How spans are sent (`telemetry.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (`http/protobuf`), what collectors expect by default.
    HttpProtobuf,
    /// JSON over HTTP (`http/json`).
    HttpJson,
}

/// Where and how traces are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetrySettings {
    /// The collector's base URL (`http://127.0.0.1:4318`); `/v1/traces` is
    /// appended, as to `OTEL_EXPORTER_OTLP_ENDPOINT`. `None`: the standard
    /// environment variables decide, and without them nothing is exported.
    pub endpoint: Option<String>,
    /// The wire format; `None`: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, else protobuf.
    pub protocol: Option<OtlpProtocol>,
    /// `service.name` of every span; `None`: `OTEL_SERVICE_NAME`, else "paddock".
    pub service_name: Option<String>,
    /// The share of traces started here that are kept (0 to 1); a trace
    /// whose caller sent a `traceparent` follows the caller's decision.
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings { endpoint: None, protocol: None, service_name: None, sample_ratio: 1.0 }
    }
}

impl TelemetrySettings {
    /// The URL spans are posted to, when the file names a collector.
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint.as_ref().map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
    }
}

/// `[telemetry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TelemetrySection {
    endpoint: Option<String>,
    protocol: Option<String>,
    service_name: Option<String>,
    sample_ratio: Option<f64>,
}

/// Validates `[telemetry]`.
pub(super) fn telemetry(section: TelemetrySection) -> Result<TelemetrySettings, String> {
    if let Some(endpoint) = &section.endpoint {
        let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace)) {
            return Err(format!(
                "telemetry.endpoint: `{endpoint}` is not a collector's URL like \"http://127.0.0.1:4318\""
            ));
        }
    }
    let protocol = match section.protocol.as_deref() {
        None => None,
        Some("http/protobuf") => Some(OtlpProtocol::HttpProtobuf),
        Some("http/json") => Some(OtlpProtocol::HttpJson),
        Some(other) => {
            return Err(format!(
                "telemetry.protocol: `{other}` is not supported; use \"http/protobuf\" or \"http/json\" (no gRPC)"
            ));
        }
    };
    if section.service_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("telemetry.service-name must not be empty".to_string());
    }
    let sample_ratio = section.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(format!("telemetry.sample-ratio ({sample_ratio}) must be 0 to 1"));
    }
    Ok(TelemetrySettings { endpoint: section.endpoint, protocol, service_name: section.service_name, sample_ratio })
}

#[cfg(test)]
mod tests {
    use super::{OtlpProtocol, TelemetrySettings};
    use crate::Settings;
    use std::path::Path;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("conf/paddock.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn telemetry_is_off_by_default_and_read_whole_when_given() {
        assert_eq!(parse("").unwrap().telemetry, TelemetrySettings::default());
        let s = parse(
            "[telemetry]\nendpoint = \"http://127.0.0.1:4318/\"\nprotocol = \"http/json\"\n\
             service-name = \"edge\"\nsample-ratio = 0.25\n",
        )
        .unwrap()
        .telemetry;
        assert_eq!(s.traces_url().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        assert_eq!(
            (s.protocol, s.service_name.as_deref(), s.sample_ratio),
            (Some(OtlpProtocol::HttpJson), Some("edge"), 0.25)
        );
    }

    #[test]
    fn telemetry_errors_name_the_file_and_the_key() {
        for (text, message) in [
            ("endpoint = \"127.0.0.1:4318\"", "telemetry.endpoint: `127.0.0.1:4318` is not a collector's URL"),
            ("protocol = \"grpc\"", "telemetry.protocol: `grpc` is not supported"),
            ("sample-ratio = 1.5", "telemetry.sample-ratio (1.5) must be 0 to 1"),
            ("service-name = \" \"", "telemetry.service-name must not be empty"),
        ] {
            let err = parse(&format!("[telemetry]\n{text}\n")).unwrap_err();
            assert!(err.starts_with("conf/paddock.toml: ") && err.contains(message), "{err}");
        }
        let err = parse("[telemetry]\nendpiont = \"http://x\"\n").unwrap_err();
        assert!(err.contains("unknown field `endpiont`"), "{err}");
    }
}

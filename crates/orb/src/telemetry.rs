//! Logging and trace export: log lines to standard error, or to a file when the command asks for one
//! (`orb demo` without `--verbose`: its terminal is for the demo's own lines), JSON for `orb serve`
//! unless `log.format` says otherwise, text for the other commands; and, when `observability.otlp_endpoint` is set, every span
//! exported over OTLP/HTTP (protobuf) to `{endpoint}/v1/traces` — the worker spans carry the tenant, the
//! job's kind and lane and the booking's correlation id as attributes.
//!
//! The exporter's batch processor runs on a thread of its own; its HTTP calls go through ORB's reqwest
//! client (rustls, timeouts), run on the process's tokio runtime ([`RuntimeClient`]).

use std::io::IsTerminal;

use anyhow::{Context, Result};
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// An OTLP HTTP client over reqwest, run on the tokio runtime that made it (the exporter calls it from its
/// own thread).
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let (parts, body) = request.into_parts();
        let call = async move {
            let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let response = builder.send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = self.runtime.spawn(call).await??;
        let mut out = http::Response::new(bytes);
        *out.status_mut() = status;
        Ok(out)
    }
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered (at most a few seconds), then stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: the last traces could not be exported: {e}");
        }
    }
}

/// Starts logging and, when configured, trace export. `service`: `orb serve` (JSON logs by default);
/// `log_file`: write the log lines to this file (created or emptied) instead of standard error.
pub fn init(config: &Config, service: bool, log_file: Option<&std::path::Path>) -> Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a log file or a pipe gets plain text.
    let format = config.log.format.unwrap_or(if service { LogFormat::Json } else { LogFormat::Text });
    let fmt = tracing_subscriber::fmt::layer();
    let fmt = match log_file {
        None => fmt
            .with_writer(tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr))
            .with_ansi(std::io::stderr().is_terminal()),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the directory of the log file {}", path.display())
                })?;
            }
            let file = std::fs::File::create(path).with_context(|| {
                format!("cannot write the log file {}: check its directory's permissions", path.display())
            })?;
            fmt.with_writer(tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file)))
                .with_ansi(false)
        }
    };
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let (otel, provider) = match &config.observability.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let client = RuntimeClient {
                http: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .context("building the OTLP HTTP client")?,
                runtime: tokio::runtime::Handle::try_current()
                    .context("trace export needs the async runtime")?,
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .context("building the OTLP span exporter (observability.otlp_endpoint)")?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("orb").build())
                .build();
            let tracer = provider.tracer("orb");
            (Some(tracing_opentelemetry::layer().with_tracer(tracer)), Some(provider))
        }
    };
    // A second initialisation (tests in one process) is harmless: keep the first.
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    Ok(Telemetry { provider })
}

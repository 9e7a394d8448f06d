//! `ambient analyze`: parse and validate mesh configuration, one finding per problem.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::OutputFormat;
use crate::config::files::{FileLoader, FilesConfig};
use crate::config::kube::KubeConfig;
use crate::config::{self, Diagnostic, Severity, SourceConfig, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Threshold {
    Info,
    Warning,
    Error,
}

impl Threshold {
    fn admits(self, severity: Severity) -> bool {
        let rank = match severity {
            Severity::Info => Threshold::Info,
            Severity::Warning => Threshold::Warning,
            Severity::Error => Threshold::Error,
        };
        rank >= self
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient analyze -f mesh/                # a folder of YAML, recursively\n  ambient analyze -f policy.yaml -o json\n  kubectl get authorizationpolicies -A -o yaml | ambient analyze -f -\n  ambient analyze                         # the current Kubernetes cluster\n\nFinding codes are listed in docs/analyze.md."
)]
pub struct AnalyzeArgs {
    /// Files or folders of YAML to analyze (repeatable; `-` reads stdin). Without it, the
    /// current Kubernetes cluster is analyzed.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Lowest severity to print.
    #[arg(long, value_enum, default_value = "warning")]
    pub output_threshold: Threshold,
    /// Lowest severity that makes the exit status 1.
    #[arg(long, value_enum, default_value = "error")]
    pub failure_threshold: Threshold,
    /// With no `-f`: kubeconfig file (default: `$KUBECONFIG`, `~/.kube/config`, or in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// With no `-f`: kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// With no `-f`: how long to wait for the cluster's objects.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?} is not a duration like 30s or 2m")),
    }
}

/// What was analyzed and what was found.
pub struct Report {
    pub objects: usize,
    pub sources: String,
    pub findings: Vec<Diagnostic>,
}

/// Reads and checks the given files and folders.
pub fn analyze_files(paths: Vec<PathBuf>) -> Result<Report, config::ConfigError> {
    let mut loader = FileLoader::new(FilesConfig { watch: false, ..FilesConfig::new(paths) })?;
    let store = Store::new();
    loader.reload(&store);
    let files = loader.files_read();
    Ok(Report {
        objects: store.snapshot().len(),
        sources: format!("{files} file{}", if files == 1 { "" } else { "s" }),
        findings: store.diagnostics(),
    })
}

/// Reads and checks what the current Kubernetes cluster holds.
fn analyze_cluster(kube: KubeConfig, timeout: Duration) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let source = config::start(SourceConfig::Kube(kube)).await.context("analyzing the cluster")?;
        tokio::time::timeout(timeout, source.store.synced())
            .await
            .map_err(|_| anyhow::anyhow!("the cluster's objects did not load within {timeout:?}"))?;
        Ok(Report {
            objects: source.store.snapshot().len(),
            sources: "the cluster".into(),
            findings: source.store.diagnostics(),
        })
    })
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut report = if args.paths.is_empty() {
        let kube = KubeConfig { context: args.context.clone(), kubeconfig: args.kubeconfig.clone(), kinds: None };
        analyze_cluster(kube, args.timeout)?
    } else {
        analyze_files(args.paths.clone())?
    };
    report.findings.sort_by(|a, b| (&a.file, a.line, a.code).cmp(&(&b.file, b.line, b.code)));
    let failed = report.findings.iter().any(|d| args.failure_threshold.admits(d.severity));
    let shown: Vec<&Diagnostic> = report.findings.iter().filter(|d| args.output_threshold.admits(d.severity)).collect();

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&shown)?),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&shown).context("rendering YAML")?),
        OutputFormat::Table if !shown.is_empty() => println!("{}", table(&shown)),
        OutputFormat::Table => {}
    }
    eprintln!("{}", summary(&report, shown.len()));
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn table(findings: &[&Diagnostic]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["CODE", "SEVERITY", "LOCATION", "OBJECT", "MESSAGE"]);
    for d in findings {
        let message = match &d.field {
            Some(field) => format!("field `{field}`: {}", d.message),
            None => d.message.clone(),
        };
        table.add_row([
            d.code.to_string(),
            d.severity.to_string(),
            d.location(),
            d.object.clone().unwrap_or_default(),
            message,
        ]);
    }
    table
}

fn summary(report: &Report, shown: usize) -> String {
    let count = |s: Severity| report.findings.iter().filter(|d| d.severity == s).count();
    let (errors, warnings, infos) = (count(Severity::Error), count(Severity::Warning), count(Severity::Info));
    let mut text = format!(
        "Analyzed {} object{} from {}: {errors} error{}, {warnings} warning{}, {infos} info.",
        report.objects,
        if report.objects == 1 { "" } else { "s" },
        report.sources,
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    let hidden = report.findings.len() - shown;
    if hidden > 0 {
        text.push_str(&format!(" {hidden} finding(s) below --output-threshold not shown."));
    }
    text
}

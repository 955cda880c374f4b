//! `ebdctl`: attach, detach, list and inspect EBD disks through configfs.

mod configfs;

use anyhow::Result;
use clap::{Parser, Subcommand};
use configfs::{AttachSpec, Subsystem};

/// Manage polynic EBD disks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The ebd configfs subsystem directory.
    #[arg(long, default_value = configfs::DEFAULT_ROOT, global = true)]
    configfs: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a disk and power it on; prints its block device.
    Attach {
        /// Name of the configfs directory.
        #[arg(long, default_value = "disk0")]
        name: String,
        #[command(flatten)]
        spec: AttachSpec,
    },
    /// Power a disk off and remove it.
    Detach {
        /// Name of the configfs directory.
        name: String,
    },
    /// List disks.
    List,
    /// Show a disk's counters.
    Stats {
        /// Name of the configfs directory.
        name: String,
        /// Show each queue's counters instead of the disk's totals.
        #[arg(long)]
        per_queue: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let sys = Subsystem::open(&cli.configfs)?;
    match cli.command {
        Command::Attach { name, spec } => {
            let info = sys.attach(&name, &spec)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("/dev/{}", info.disk.as_deref().unwrap_or("?"));
            }
        }
        Command::Detach { name } => sys.detach(&name)?,
        Command::List => {
            let disks = sys.list()?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&disks)?);
            } else {
                for d in disks {
                    println!(
                        "{:<12} {:<6} {:<8} server {} export {} {}",
                        d.name,
                        d.disk.as_deref().unwrap_or("-"),
                        d.netdev,
                        d.server,
                        d.export,
                        d.size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "off".into())
                    );
                }
            }
        }
        Command::Stats { name, per_queue: true } => {
            let queues = sys.queue_stats(&name)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&queues)?);
            } else {
                for (q, counters) in queues.iter().enumerate() {
                    let fields: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("queue {q}: {}", fields.join(" "));
                }
            }
        }
        Command::Stats { name, per_queue: false } => {
            let stats = sys.stats(&name)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                for (k, v) in stats {
                    println!("{k:<18} {v}");
                }
            }
        }
    }
    Ok(())
}

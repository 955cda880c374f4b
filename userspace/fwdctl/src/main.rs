//! `fwdctl`: attach the polynic forwarding personality to net devices, set
//! their forwarding paths and show what they forwarded.

mod configfs;
mod netns;

use anyhow::Result;
use clap::{Parser, Subcommand};
use configfs::{Port, Subsystem};

/// Manage the polynic forwarding personality.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The fwd configfs subsystem directory.
    #[arg(long, default_value = configfs::DEFAULT_ROOT, global = true)]
    configfs: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Act in this network namespace (a name under /run/netns, or a path):
    /// devices are looked up in the namespace of the process that attaches.
    /// Use this rather than `ip netns exec`, which remounts /sys without
    /// configfs.
    #[arg(long, global = true)]
    netns: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the router to a net device of this namespace.
    Attach {
        /// The net device.
        device: String,
        /// Forwarding path: conventional, in-place or header-copy.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Detach the router from a device.
    Detach {
        /// The net device.
        device: String,
    },
    /// Set a device's forwarding path.
    Mode {
        /// The net device.
        device: String,
        /// conventional, in-place or header-copy.
        mode: String,
    },
    /// Show one device's mode and counters, or every device's.
    Show {
        /// The net device (all when omitted).
        device: Option<String>,
    },
    /// Set a device's counters to zero.
    Reset {
        /// The net device.
        device: String,
    },
}

fn print(ports: &[Port], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(ports)?);
        return Ok(());
    }
    for p in ports {
        println!("{} mode {}{}", p.device, p.mode, if p.attached { "" } else { " (device gone)" });
        for (k, v) in p.counters.iter().filter(|(_, v)| **v != 0) {
            println!("  {k:<28} {v}");
        }
        for (mode, b) in &p.bus_bytes_per_packet {
            println!("  {:<28} {b:.1}", format!("bus_bytes_per_packet.{mode}"));
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(ns) = &cli.netns {
        netns::enter(ns)?;
    }
    let sys = Subsystem::open(&cli.configfs)?;
    match cli.command {
        Command::Attach { device, mode } => print(&[sys.attach(&device, mode.as_deref())?], cli.json)?,
        Command::Detach { device } => sys.detach(&device)?,
        Command::Mode { device, mode } => sys.set_mode(&device, &mode)?,
        Command::Show { device: Some(d) } => print(&[sys.show(&d)?], cli.json)?,
        Command::Show { device: None } => print(&sys.list()?, cli.json)?,
        Command::Reset { device } => sys.reset(&device)?,
    }
    Ok(())
}

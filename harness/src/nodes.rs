//! Where and how each node runs: its identity and addresses ([`NodeInfo`]) and the command
//! that starts it ([`Launch`], built by a system's [`Launcher`]). Shared by the system
//! specs (`sut`), the processes (`cluster`), the faults and the packet delayer.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Where and how one node runs.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// `n1`, `n2`, ...
    pub name: String,
    pub addr: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
    pub netns: String,
    /// `<run>/<node>/`: log, data dir, faketime control file.
    pub dir: PathBuf,
    /// Not an initial voter: started in join mode, waits to be added by a membership
    /// change (see [`crate::nemesis::membership`]).
    pub spare: bool,
}

impl NodeInfo {
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr, self.client_port))
    }
    pub fn peer_addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr, self.peer_port))
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }
    pub fn faketime_file(&self) -> PathBuf {
        self.dir.join("faketime.rc")
    }
}

/// The command that starts one node: program, argv and environment.
#[derive(Clone, Debug)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Builds a node's launch command from its info and the whole cluster's.
pub type Launcher = Box<dyn Fn(&NodeInfo, &[NodeInfo]) -> Launch + Send + Sync>;

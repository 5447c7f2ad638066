//! Network namespaces for partition tests: `n` namespaces, each with a veth into one bridge in
//! the root namespace and the address `10.a.b.(i+1)/24`; the bridge holds `10.a.b.254`, so
//! the test process itself (in the root namespace) reaches every namespace. Partitions are
//! blackhole routes inside the namespaces, so only iproute2 (`ip`) is needed: no iptables,
//! nftables or tc (this machine's kernel has no qdisc modules for tc).
//!
//! A blackhole route drops packets to that address: an established connection stalls (its
//! segments are dropped both ways, as in a real partition), while a new `connect` to a cut
//! address fails at once with an error instead of timing out.
//!
//! Everything is removed on drop, also when the test panics. Processes started inside a
//! namespace keep it alive: drop (kill) them before the [`NetNs`].

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::process;
use super::WAIT;

/// `n` network namespaces on one bridge; removed on drop.
pub struct NetNs {
    tag: String,
    /// The second and third octets of the subnet `10.a.b.0/24`.
    subnet: (u8, u8),
    count: usize,
    /// Blackhole routes in place: (namespace index, address index).
    cut: Mutex<BTreeSet<(usize, usize)>>,
}

impl NetNs {
    /// Creates `n` namespaces (at most 200) with names unique to this process and call.
    ///
    /// # Panics
    /// If a step fails (the test needs root and iproute2) or no free subnet is found.
    pub fn create(n: usize) -> NetNs {
        assert!((1..=200).contains(&n), "1..=200 namespaces, not {n}");
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names are limited to 15 bytes: "mk" + 8 hex digits + role + index.
        let tag = format!("mk{:08x}", (pid << 8) ^ seq);
        let subnet = free_subnet(pid.wrapping_mul(31).wrapping_add(seq));
        let net = NetNs {
            tag,
            subnet,
            count: n,
            cut: Mutex::new(BTreeSet::new()),
        };
        // Left over from a killed run with the same process id: start clean.
        net.remove();
        let bridge = net.bridge();
        let host = format!("{}/24", net.host_addr());
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &host, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..n {
            let (ns, inner, outer) = (net.name(i), net.inner(i), net.outer(i));
            let addr = format!("{}/24", net.addr(i));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["link", "set", &outer, "master", &bridge]);
            ip(&["link", "set", &outer, "up"]);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// The number of namespaces.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: there is at least one namespace.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The name of namespace `i` (for `ip netns exec`).
    pub fn name(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// The address of namespace `i`: `10.a.b.(i+1)`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.count, "namespace {i} of {}", self.count);
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, i as u8 + 1)
    }

    /// The bridge's address, `10.a.b.254`: where connections from the test process come from.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 254)
    }

    /// A command that runs `program` inside namespace `i` (`ip netns exec NAME program`);
    /// `ip netns exec` execs the program, so the child's pid is the program's own.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name(i), program]);
        command
    }

    /// Starts `program args...` inside namespace `i` with no stdin and its output discarded.
    ///
    /// # Panics
    /// If the program cannot be started.
    pub fn spawn(&self, i: usize, program: &str, args: &[&str]) -> Child {
        self.command(i, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} in namespace {i}: {e}"))
    }

    /// Cuts all traffic between the namespaces in `a` and those in `b`, both ways. Other
    /// traffic (within a group, to and from the test process) is untouched. Cumulative with
    /// earlier partitions until [`NetNs::heal`].
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let mut cut = self.cut.lock().expect("netns cut lock poisoned");
        for &x in a {
            for &y in b {
                assert!(x != y, "namespace {x} is on both sides of the partition");
                for (from, to) in [(x, y), (y, x)] {
                    if cut.insert((from, to)) {
                        let dst = format!("{}/32", self.addr(to));
                        ip(&["-n", &self.name(from), "route", "add", "blackhole", &dst]);
                    }
                }
            }
        }
    }

    /// Cuts namespace `i` off from every other namespace.
    pub fn isolate(&self, i: usize) {
        let others: Vec<usize> = (0..self.count).filter(|&j| j != i).collect();
        self.partition(&[i], &others);
    }

    /// Removes every partition.
    pub fn heal(&self) {
        let mut cut = self.cut.lock().expect("netns cut lock poisoned");
        for (from, to) in std::mem::take(&mut *cut) {
            let dst = format!("{}/32", self.addr(to));
            ip(&["-n", &self.name(from), "route", "del", "blackhole", &dst]);
        }
    }

    /// The partitions in place, as (from, to) namespace pairs whose traffic is dropped.
    pub fn cuts(&self) -> Vec<(usize, usize)> {
        let cut = self.cut.lock().expect("netns cut lock poisoned");
        cut.iter().copied().collect()
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    /// The veth end inside namespace `i`.
    fn inner(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    /// The veth end on the bridge.
    fn outer(&self, i: usize) -> String {
        format!("{}p{i}", self.tag)
    }

    /// Deletes the namespaces, veths and bridge, ignoring what is already gone.
    fn remove(&self) {
        for i in 0..self.count {
            // Deleting a namespace destroys its veth end, and with it the peer, but the
            // kernel does that lazily: delete the peer too so the name is free at once.
            quiet_ip(&["link", "del", &self.outer(i)]);
            quiet_ip(&["netns", "del", &self.name(i)]);
        }
        quiet_ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A `/24` in 10.64.0.0/10 not on any interface yet, starting from one derived from `seed`.
fn free_subnet(seed: u32) -> (u8, u8) {
    let taken = process::run(Command::new("ip").args(["-4", "-o", "addr"]), None, WAIT).stdout;
    for k in 0..(64 * 256) {
        let n = (seed as usize + k) % (64 * 256);
        let (a, b) = (64 + (n / 256) as u8, (n % 256) as u8);
        if !taken.contains(&format!(" 10.{a}.{b}.")) {
            return (a, b);
        }
    }
    panic!("no free /24 in 10.64.0.0/10");
}

/// Runs `ip args...`, failing the test if it fails.
fn ip(args: &[&str]) {
    let run = process::run(Command::new("ip").args(args), None, WAIT);
    assert!(
        run.status.success(),
        "`ip {}` failed; network namespace tests need root and iproute2: {}",
        args.join(" "),
        run.report()
    );
}

/// Runs `ip args...`, ignoring failure (cleanup of what may not exist).
fn quiet_ip(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

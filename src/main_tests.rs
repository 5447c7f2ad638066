use super::*;

use clap::error::ErrorKind;

/// Parses `minikv args...`, expecting clap to refuse it; returns the message.
fn refused(args: &[&str]) -> String {
    let argv = std::iter::once("minikv").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(_) => panic!("{args:?} was accepted"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
            e.to_string()
        }
    }
}

fn parsed(args: &[&str]) -> Cli {
    let argv = std::iter::once("minikv").chain(args.iter().copied());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?} refused: {e}"))
}

fn node_args(args: &[&str]) -> NodeArgs {
    let mut argv = vec!["server", "1", "7001"];
    argv.extend_from_slice(args);
    match parsed(&argv).command {
        Command::Server { node, .. } => node,
        _ => unreachable!("parsed a server command"),
    }
}

#[test]
fn server_id_zero_is_refused() {
    let message = refused(&["server", "0", "7001"]);
    assert!(
        message.contains("'0'") && message.contains("1 or more"),
        "{message}"
    );
}

#[test]
fn server_id_negative_reaches_the_range_message() {
    let message = refused(&["server", "-1", "7001"]);
    assert!(
        message.contains("'-1'") && message.contains("1 or more"),
        "{message}"
    );
}

#[test]
fn server_port_out_of_range_is_refused() {
    let message = refused(&["server", "1", "70000"]);
    assert!(message.contains("from 0 to 65535"), "{message}");
}

#[test]
fn cluster_nodes_zero_is_refused() {
    let message = refused(&["cluster", "--nodes", "0"]);
    assert!(
        message.contains("--nodes") && message.contains("from 1 to 1024"),
        "{message}"
    );
}

#[test]
fn cluster_base_port_zero_is_refused() {
    let message = refused(&["cluster", "--base-port", "0"]);
    assert!(message.contains("--base-port"), "{message}");
}

#[test]
fn databases_zero_and_too_many_are_refused() {
    for value in ["0", "-3", "1025", "many"] {
        let message = refused(&["server", "1", "7001", "--databases", value]);
        assert!(message.contains("from 1 to 1024"), "{value}: {message}");
    }
    assert_eq!(node_args(&["--databases", "1024"]).databases, 1024);
}

#[test]
fn maxclients_zero_is_refused() {
    let message = refused(&["cluster", "--maxclients", "0"]);
    assert!(message.contains("--maxclients"), "{message}");
    assert_eq!(node_args(&["--maxclients", "1"]).maxclients, 1);
}

#[test]
fn threads_zero_is_refused() {
    let message = refused(&["server", "1", "7001", "--threads", "0"]);
    assert!(message.contains("from 1 to 1024"), "{message}");
    assert_eq!(node_args(&["--threads", "1"]).threads, Some(1));
    assert_eq!(node_args(&[]).threads, None);
}

#[test]
fn negative_intervals_reach_the_range_message() {
    for flag in ["--save-interval", "--cleanup-interval"] {
        let message = refused(&["server", "1", "7001", flag, "-1"]);
        assert!(
            message.contains(flag) && message.contains("seconds above 0"),
            "{message}"
        );
    }
    for value in ["0", "nan", "inf", "1e30", "soon"] {
        refused(&["server", "1", "7001", "--save-interval", value]);
    }
    assert_eq!(
        node_args(&["--save-interval", "0.5"]).save_interval,
        Duration::from_millis(500)
    );
}

#[test]
fn negative_idle_timeout_is_refused() {
    let message = refused(&["server", "1", "7001", "--timeout", "-1"]);
    assert!(message.contains("from 0 to"), "{message}");
    assert_eq!(node_args(&["--timeout", "0"]).timeout, 0);
}

#[test]
fn client_numbers_are_checked() {
    let message = refused(&["client", "--retries", "-1"]);
    assert!(message.contains("--retries"), "{message}");
    let message = refused(&["client", "--retry-delay", "-0.5"]);
    assert!(message.contains("seconds above 0"), "{message}");
    let message = refused(&["client", "--timeout", "0"]);
    assert!(message.contains("seconds above 0"), "{message}");
}

#[test]
fn servers_must_be_a_list_of_host_port() {
    for (value, named) in [
        ("nonsense", "'nonsense'"),
        ("localhost:7001,nonsense", "'nonsense'"),
        ("localhost:0", "'localhost:0'"),
        ("localhost:70000", "'localhost:70000'"),
        (":7001", "':7001'"),
        ("a b:7001", "'a b:7001'"),
        ("localhost:7001,,localhost:7002", "entry 2 is empty"),
        ("::1:7001", "'::1:7001'"),
    ] {
        let message = refused(&["client", "--servers", value]);
        assert!(message.contains(named), "{value}: {message}");
    }
    for value in ["", " ", ","] {
        let message = refused(&["client", "--servers", value]);
        assert!(
            message.contains("list of host:port"),
            "{value:?}: {message}"
        );
    }
}

#[test]
fn servers_accepts_names_addresses_and_the_default() {
    let servers = |args: &[&str]| match parsed(args).command {
        Command::Client { servers, .. } => servers.0,
        _ => unreachable!("parsed a client command"),
    };
    assert_eq!(
        servers(&["client", "--servers", "db1:7001, 10.0.0.2:7002,[::1]:7003"]),
        ["db1:7001", "10.0.0.2:7002", "[::1]:7003"]
    );
    assert_eq!(servers(&["client"]), ClientConfig::default().servers);
}

#[test]
fn ready_line_for_the_default_cluster_names_the_plain_commands() {
    let addrs: Vec<SocketAddr> = (7001..=7003)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    assert_eq!(
        ready_line(&addrs, None),
        "ready: try 'minikv client' or 'redis-cli -p 7001'; Ctrl+C stops and saves"
    );
    let wildcard: Vec<SocketAddr> = (7001..=7003)
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
        .collect();
    assert_eq!(ready_line(&wildcard, None), ready_line(&addrs, None));
}

#[test]
fn ready_line_of_a_replicated_cluster_says_so_with_replicas_and_buses() {
    let addrs: Vec<SocketAddr> = (7001..=7003)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let replication = Replication {
        replicas: 3,
        buses: (17001..=17003).map(|p| format!("127.0.0.1:{p}")).collect(),
    };
    assert_eq!(
        ready_line(&addrs, Some(&replication)),
        "ready: replicated cluster (Raft), 3 replicas per shard, cluster bus on node 1 \
         127.0.0.1:17001, node 2 127.0.0.1:17002, node 3 127.0.0.1:17003; try 'minikv \
         client' or 'redis-cli -p 7001'; Ctrl+C stops and saves"
    );
    let one = Replication {
        replicas: 1,
        buses: vec!["127.0.0.1:17001".into()],
    };
    assert!(ready_line(&addrs[..1], Some(&one)).contains("1 replica per shard"));
}

#[test]
fn ready_line_names_other_ports_and_hosts() {
    let addrs: Vec<SocketAddr> = (9001..=9002)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    assert_eq!(
        ready_line(&addrs, None),
        "ready: try 'minikv client --servers 127.0.0.1:9001,127.0.0.1:9002' or \
         'redis-cli -p 9001'; Ctrl+C stops and saves"
    );
    let lan = [SocketAddr::from(([10, 0, 0, 5], 7001))];
    assert_eq!(
        ready_line(&lan, None),
        "ready: try 'minikv client --servers 10.0.0.5:7001' or 'redis-cli -h 10.0.0.5 -p \
         7001'; Ctrl+C stops and saves"
    );
}

#[test]
fn rebalance_batch_defaults_to_1024_and_remove_node_takes_an_id() {
    match parsed(&["rebalance", "--servers", "localhost:7001,localhost:7002"]).command {
        Command::Rebalance { slots } => {
            assert_eq!(slots.batch, 1024);
            assert_eq!(slots.servers.0, ["localhost:7001", "localhost:7002"]);
        }
        _ => unreachable!("parsed a rebalance command"),
    }
    match parsed(&["remove-node", "4", "--servers", "h:1", "--batch", "12288"]).command {
        Command::RemoveNode { id, slots } => assert_eq!((id, slots.batch), (4, 12288)),
        _ => unreachable!("parsed a remove-node command"),
    }
    let message = refused(&["rebalance", "--servers", "h:1", "--batch", "12289"]);
    assert!(message.contains("from 1 to 12288"), "{message}");
}

#[test]
fn dashboard_defaults_to_loopback_port_8080_and_takes_the_client_flags() {
    match parsed(&["dashboard", "--servers", "localhost:7001,localhost:7002"]).command {
        Command::Dashboard {
            servers,
            http_port,
            http,
            connect,
        } => {
            assert_eq!(servers.0, ["localhost:7001", "localhost:7002"]);
            assert_eq!(http_port, 8080);
            assert_eq!(http.http_host, "127.0.0.1");
            assert!(http.http_allow_host.is_empty());
            assert!(connect.password.is_none() && !connect.tls);
        }
        _ => unreachable!("parsed a dashboard command"),
    }
    match parsed(&[
        "dashboard",
        "--servers",
        "h:1",
        "--http-port",
        "0",
        "--http-host",
        "0.0.0.0",
        "--http-allow-host",
        "kv.example.com",
        "--password",
        "pw",
    ])
    .command
    {
        Command::Dashboard {
            http_port,
            http,
            connect,
            ..
        } => {
            assert_eq!(http_port, 0);
            assert_eq!(http.http_host, "0.0.0.0");
            assert_eq!(http.http_allow_host, ["kv.example.com"]);
            assert_eq!(connect.password.as_deref(), Some("pw"));
        }
        _ => unreachable!("parsed a dashboard command"),
    }
    let message = refused(&["dashboard", "--servers", "nohostport"]);
    assert!(message.contains("is not host:port"), "{message}");
}

//! `NatsCluster`: three nodes form one JetStream meta group, an R3 stream takes publishes, and
//! keeps taking them after its leader node is killed.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use stratus_testkit::{NatsCluster, TestkitError, unique_name};

use crate::{process_exists, runtime};

/// Publishes until JetStream acknowledges (a new stream leader may take a few seconds to be
/// elected), failing after `deadline`.
async fn publish_acked(context: &jetstream::Context, subject: String, deadline: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let attempt = async {
            let ack = context.publish(subject.clone(), "payload".into()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(ack.await?.sequence)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(sequence)) => return sequence,
            Ok(Err(error)) if started.elapsed() < deadline => eprintln!("publish failed: {error}"),
            Err(_) if started.elapsed() < deadline => eprintln!("publish timed out"),
            outcome => panic!("no acknowledged publish within {deadline:?}: {outcome:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn three_node_cluster_keeps_accepting_publishes_to_an_r3_stream_after_losing_its_leader() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let urls: Vec<String> = cluster.urls().split(',').map(str::to_owned).collect();
    assert_eq!(urls.len(), 3);
    let stream_name = unique_name("s");
    let rt = runtime();
    let leader = rt.block_on(async {
        let client = async_nats::connect(urls.as_slice()).await.unwrap();
        let context = jetstream::new(client);
        let mut stream = context
            .create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![format!("{stream_name}.>")],
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        for expected in 1..=5 {
            let sequence = publish_acked(
                &context,
                format!("{stream_name}.a"),
                Duration::from_secs(10),
            )
            .await;
            assert_eq!(sequence, expected);
        }
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3);
        info.cluster
            .as_ref()
            .and_then(|cluster| cluster.leader.clone())
            .unwrap()
    });

    let leader_index = cluster.index_of(&leader).unwrap();
    let leader_pid = cluster.node(leader_index).pid();
    cluster.node(leader_index).kill();
    assert!(!process_exists(leader_pid));

    rt.block_on(async {
        let client = async_nats::connect(urls.as_slice()).await.unwrap();
        let context = jetstream::new(client);
        let sequence = publish_acked(
            &context,
            format!("{stream_name}.b"),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(sequence, 6);
        let mut stream = context.get_stream(&stream_name).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.state.messages, 6);
        let new_leader = info
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.leader.clone())
            .unwrap();
        assert_ne!(new_leader, leader);
    });

    // The two survivors still form the meta group; the killed node rejoins after a restart.
    cluster.wait_formed().unwrap();
    cluster.node(leader_index).restart().unwrap();
    cluster.wait_formed().unwrap();
}

#[test]
fn dropped_cluster_leaves_no_process() {
    let mut cluster = NatsCluster::start(3).unwrap();
    let pids: Vec<u32> = (0..cluster.len())
        .map(|index| cluster.node(index).pid())
        .collect();
    assert!(pids.iter().all(|&pid| process_exists(pid)));
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid), "cluster node {pid} outlived its drop");
    }
}

#[test]
fn a_cluster_of_one_is_refused() {
    assert!(matches!(
        NatsCluster::start(1),
        Err(TestkitError::ClusterSize { requested: 1 })
    ));
}

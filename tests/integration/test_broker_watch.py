"""What a worker's last line says when Faust stops with an error: the broker's part in it."""

from __future__ import annotations

from stream.config import load_settings
from stream.kafka import cluster_config
from stream.tools.broker import EmbeddedBroker, free_port
from stream.worker.broker_watch import BrokerWatch, reason_after_crash


def watch_of(bootstrap: str, cluster_id: str | None) -> BrokerWatch:
    return BrokerWatch(cluster_config(load_settings(env={}, bootstrap=bootstrap)), cluster_id)


def test_a_broker_that_does_not_answer_is_named():
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    reason = reason_after_crash(bootstrap, watch_of(bootstrap, "at-start"), attempts=2)
    assert reason.startswith(f"Kafka at {bootstrap} does not answer")


def test_another_cluster_is_named_and_the_same_cluster_is_no_reason(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log").running() as broker:
        assert reason_after_crash(broker.bootstrap, watch_of(broker.bootstrap, broker.cluster_id)) == ""
        reason = reason_after_crash(broker.bootstrap, watch_of(broker.bootstrap, "a-cluster-before"))
    assert "is another Kafka cluster now ('a-cluster-before' at start" in reason

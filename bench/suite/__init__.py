"""`python -m bench`: statesync next to etcd and NATS JetStream, measured in one run."""

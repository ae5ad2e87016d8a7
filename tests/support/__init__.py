"""Real servers and helpers the connection tests start on loopback: an IMDSv2 server, a TLS
front for moto, a forward proxy, a moto server enforcing IAM, TLS redis-servers."""

"""The network: configuration, the one HTTP transport, authentication, fetch + cache."""

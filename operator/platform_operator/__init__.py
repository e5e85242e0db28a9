"""platform-operator: one PlatformService per service, and everything it needs kept true."""

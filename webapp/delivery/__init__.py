"""Email delivery: building messages, transports (SMTP, dev mailbox) and the outbox worker."""

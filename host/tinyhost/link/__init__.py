"""The serial link to a device: framing, transports (serial, pty sim), and the protocol client."""

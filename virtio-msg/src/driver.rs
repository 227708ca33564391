//! The driver side: a client that speaks the transport messages to one device.
// Being written.

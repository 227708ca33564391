//! A simulated FF-A world. Being written.

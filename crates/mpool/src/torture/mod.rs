//! Torture harness (WIP).

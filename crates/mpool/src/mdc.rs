//! Metadata containers (WIP).

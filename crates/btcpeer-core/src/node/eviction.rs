//! Core's inbound eviction (`SelectNodeToEvict` in `node/eviction.cpp`).

//! Manual bans with expiry, the rolling discouragement filter, and the anchors file.

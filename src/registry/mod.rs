//! Registry storage logic.

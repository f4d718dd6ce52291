//! Scenario and property tests of the engine, driven by a simulated node
//! with a fake clock.

mod sim;

mod e2e;
mod properties;
mod rules;

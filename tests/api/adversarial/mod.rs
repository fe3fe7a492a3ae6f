//! Adversarial tests: every operation of the schema against every kind of caller that
//! should be refused (`authorization`), and acknowledged sends against `kill -9`
//! (`crash`).

mod authorization;
mod crash;

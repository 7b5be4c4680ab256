//! Administration of pools as LVM does it for volume groups: the run
//! directory of active pools ([`rundir`]), finding pools on devices
//! ([`scan`]), the lifecycle verbs on whole pools, found by name or UUID
//! ([`destroy`], [`activate`], [`deactivate`], [`rename`], [`forget_pool`],
//! [`forget_paths`]), converting a pool to the current format version
//! ([`upgrade()`]), and the owner and permissions of member devices.

mod lifecycle;
pub(crate) mod ownership;
pub mod rundir;
pub mod scan;
pub mod upgrade;

pub use lifecycle::{
    activate, activate_paths, deactivate, destroy, destroy_plan, forget_paths, forget_pool, rename,
    DestroyPlan, Forgotten, MissingMember,
};
pub use upgrade::{upgrade, UpgradeOptions, UpgradeReport};

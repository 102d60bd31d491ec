//! The variables dkms reads back from dkms.conf: its whitelist and sparse-array values.

use std::collections::{BTreeMap, HashMap};

/// dkms 3.0.10's `dkms_conf_variables`, in its order (the order safe_source echoes them), and
/// dkms 3.2.2's BUILD_DEPENDS_REBUILD (after NO_WEAK_MODULES, as in 3.2.2).
pub const WHITELIST: &[&str] = &[
    "CLEAN",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "POST_ADD",
    "POST_BUILD",
    "POST_INSTALL",
    "POST_REMOVE",
    "PRE_BUILD",
    "PRE_INSTALL",
    "BUILD_DEPENDS",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_ARCH",
    "BUILD_EXCLUSIVE_CONFIG",
    "build_exclude",
    "OBSOLETE_BY",
    "MAKE",
    "MAKE_MATCH",
    "PATCH",
    "PATCH_MATCH",
    "patch_array",
    "BUILT_MODULE_NAME",
    "built_module_name",
    "BUILT_MODULE_LOCATION",
    "built_module_location",
    "DEST_MODULE_NAME",
    "dest_module_name",
    "DEST_MODULE_LOCATION",
    "dest_module_location",
    "STRIP",
    "strip",
    "AUTOINSTALL",
    "NO_WEAK_MODULES",
    "BUILD_DEPENDS_REBUILD",
    "SIGN_FILE",
    "MOK_SIGNING_KEY",
    "MOK_CERTIFICATE",
    "REMAKE_INITRD",
    "MODULES_CONF",
    "MODULES_CONF_OBSOLETES",
    "MODULES_CONF_ALIAS_TYPE",
    "MODULES_CONF_OBSOLETE_ONLY",
];

/// One array element and where it was assigned: (index into the list of files read, line).
/// The bash path knows no lines, so its elements carry `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub value: String,
    pub origin: Option<(usize, usize)>,
}

/// Variables by name, each a sparse bash array (a scalar is index 0).
pub type Vars = HashMap<String, BTreeMap<u64, Elem>>;

//! `generate_mok`: the MOK pair that modules are signed with, made when missing.

use crate::error::ActionError;
use crate::kernel::Target;

use super::Session;

impl Session {
    /// dkms 3.2.2's `generate_mok` (`read_framework_conf` + `prepare_mok`): name the key and
    /// certificate (framework.conf's, `$kernelver` being `target`'s), make a new pair when
    /// either is missing, keep an existing one. Exit 1, as dkms, when there is no pair after
    /// (its line, on stdout, says why).
    pub fn generate_mok(&self, target: &Target) -> Result<(), ActionError> {
        let conf = self.settings.signing.clone().unwrap_or_default();
        let ctx = self.tree.resolve_context(target, None);
        match conf.prepare_mok(&ctx, &self.console) {
            Some(_) => Ok(()),
            None => Err(ActionError::Reported { code: 1 }),
        }
    }
}

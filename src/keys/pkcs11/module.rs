//! A loaded PKCS#11 library. `C_Initialize` may run once per process, so
//! every key on one library shares one [`Module`]; when the library reports
//! that its device is gone (a network HSM restarting, a transport dropped), the
//! module is finalized and initialized again, and every session opened before
//! that is discarded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};

/// One library, one context, and the generation of that context.
#[derive(Debug)]
pub struct Module {
    path: PathBuf,
    state: Mutex<ModuleState>,
}

#[derive(Debug)]
struct ModuleState {
    context: Pkcs11,
    generation: u64,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

impl Module {
    /// The process-wide module for a library path, loaded and initialized on
    /// first use.
    pub fn load(path: &Path) -> Result<Arc<Module>, Error> {
        let mut modules = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(module) = modules.get(path) {
            return Ok(module.clone());
        }
        let context = Pkcs11::new(path)?;
        initialize(&context)?;
        let module =
            Arc::new(Module { path: path.to_path_buf(), state: Mutex::new(ModuleState { context, generation: 0 }) });
        modules.insert(path.to_path_buf(), module.clone());
        Ok(module)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current context and its generation.
    pub fn context(&self) -> (Pkcs11, u64) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.context.clone(), state.generation)
    }

    /// Starts the library over after a device-level failure seen under
    /// `generation`; a no-op when another caller already did.
    pub fn reinitialize(&self, generation: u64) -> Result<(), Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation != generation {
            return Ok(());
        }
        let _ = state.context.clone().finalize();
        initialize(&state.context)?;
        state.generation += 1;
        tracing::warn!(module = %self.path.display(), "PKCS#11 library initialized again after a device failure");
        Ok(())
    }
}

fn initialize(context: &Pkcs11) -> Result<(), Error> {
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether an error means the whole library lost its device, so sessions
/// cannot come back without initializing it again.
pub fn is_device_lost(error: &Error) -> bool {
    matches!(
        error,
        Error::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::GeneralError
                | RvError::CryptokiNotInitialized
                | RvError::TokenNotPresent,
            _
        )
    )
}

/// Whether an error means this session is gone but the library is fine.
pub fn is_session_lost(error: &Error) -> bool {
    matches!(
        error,
        Error::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

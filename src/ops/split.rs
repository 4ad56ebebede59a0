//! `bale split`: a bundle cut into parts with a signed part list.

use std::path::Path;

use crate::bundle::split::{self, SplitReport};
use crate::error::Error;
use crate::sign::SigningKey;

/// Runs `bale split`: parts of at most `size` bytes (the default under
/// FAT32's limit when `None`), the list signed with `key` when given.
pub fn run(
    bundle: &Path,
    size: Option<u64>,
    key: Option<&SigningKey>,
) -> Result<SplitReport, Error> {
    let size = size.unwrap_or(split::DEFAULT_PART_SIZE);
    Ok(split::split(bundle, size, key)?)
}

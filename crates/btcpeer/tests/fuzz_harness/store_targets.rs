//! The `store_load` fuzz target: the loaders of the files a node keeps (its address book, bans,
//! discouragement filter and anchors), fed arbitrary bytes. Input: a selector byte (which loader,
//! modulo the number of loaders), then the file's bytes. A loader must return a typed error or a
//! valid value, never panic or allocate by an unchecked count; what loads must encode to a file that
//! loads to the same thing.

use btcpeer::core::addrbook::AddrBook;

/// The loaders, in the order of the selector byte.
pub const STORE_LOADERS: [&str; 1] = ["addrbook"];

/// One input: see the [module](self).
pub fn store_load(data: &[u8]) {
    let Some((&selector, file)) = data.split_first() else { return };
    if usize::from(selector) % STORE_LOADERS.len() == 0 {
        book(file);
    }
}

fn book(file: &[u8]) {
    let Ok(book) = AddrBook::decode(file, 1) else { return };
    book.check().expect("a loaded book is consistent");
    assert!(book.len() <= btcpeer::core::addrbook::MAX_ENTRIES);
    let again = AddrBook::decode(&book.encode(), 1).expect("what loads, re-encodes to a loadable file");
    assert_eq!(again.encode(), book.encode(), "encoding is stable");
}

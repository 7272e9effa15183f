//! The `store_load` fuzz target: the loaders of the files a node keeps (its address book, bans,
//! discouragement filter and anchors), fed arbitrary bytes. Input: a selector byte (which loader,
//! modulo the number of loaders), then the file's bytes. A loader must return a typed error or a
//! valid value, never panic or allocate by an unchecked count; what loads must encode to a file that
//! loads to the same thing.

use btcpeer::core::addrbook::AddrBook;
use btcpeer::core::node::bans::{self, BanList, Discouraged};

/// The loaders, in the order of the selector byte.
pub const STORE_LOADERS: [&str; 4] = ["addrbook", "bans", "discouraged", "anchors"];

/// One input: see the [module](self).
pub fn store_load(data: &[u8]) {
    let Some((&selector, file)) = data.split_first() else { return };
    match usize::from(selector) % STORE_LOADERS.len() {
        0 => book(file),
        1 => {
            let Ok(list) = BanList::decode(file) else { return };
            assert!(list.len() <= bans::MAX_BANS);
            assert_eq!(BanList::decode(&list.encode()).as_ref(), Ok(&list), "ban lists round-trip");
        }
        2 => {
            let Ok(filter) = Discouraged::decode(file) else { return };
            assert_eq!(Discouraged::decode(&filter.encode()).as_ref(), Ok(&filter), "filters round-trip");
        }
        _ => {
            let Ok(anchors) = bans::decode_anchors(file) else { return };
            assert!(anchors.len() <= bans::MAX_ANCHORS);
            assert_eq!(bans::decode_anchors(&bans::encode_anchors(&anchors)), Ok(anchors), "anchors round-trip");
        }
    }
}

fn book(file: &[u8]) {
    let Ok(book) = AddrBook::decode(file, 1) else { return };
    book.check().expect("a loaded book is consistent");
    assert!(book.len() <= btcpeer::core::addrbook::MAX_ENTRIES);
    let again = AddrBook::decode(&book.encode(), 1).expect("what loads, re-encodes to a loadable file");
    assert_eq!(again.encode(), book.encode(), "encoding is stable");
}

//! Integrated VS: the group keys of the views a [`super::VsClient`] knows, by group and view id.
//!
//! The daemon hands `K(g, v)` with every SP membership (KEYED_MEMBERSHIP). A key is recorded
//! under the membership's view id when the membership arrives, before the flush layer installs
//! that view; a multicast is encrypted with the newest key of the view it is sent in (the flush
//! layer's installed view) and a message is opened with the key its header names among the keys
//! of the view it is delivered in — the same view (sending-view delivery). A servers' key
//! refresh comes as a membership with the same view id and a new key: the flush layer treats
//! it as a duplicate view, so both keys of that view are kept (messages sent under the old key
//! just before the refresh still open), at most [`MAX_KEYS_PER_VIEW`].

use std::collections::BTreeMap;

use sgc_crypto::e2e::E2eKey;
use sgc_model::groups::{Gid, GroupName, Membership};
use sgc_wire::GroupKeyInfo;

/// Keys kept per view (the newest; refreshes without membership change add one each).
pub const MAX_KEYS_PER_VIEW: usize = 4;
/// Views kept per group (installed and pending).
const MAX_VIEWS_PER_GROUP: usize = 64;

/// The keys of the known views of each group.
#[derive(Debug, Default)]
pub(crate) struct ViewKeys {
    /// Per group, views in arrival order with their keys (empty: a membership without key).
    groups: BTreeMap<GroupName, Vec<(Gid, Vec<E2eKey>)>>,
}

impl ViewKeys {
    /// An SP membership arrived, with the key the daemon gave for it (if any).
    pub(crate) fn on_membership(&mut self, m: &Membership, key: Option<&GroupKeyInfo>) {
        let views = self.groups.entry(m.group.clone()).or_default();
        let pos = match views.iter().position(|(g, _)| *g == m.gid) {
            Some(p) => p,
            None => {
                views.push((m.gid, Vec::new()));
                if views.len() > MAX_VIEWS_PER_GROUP {
                    views.remove(0);
                }
                views.len() - 1
            }
        };
        let Some((_, keys)) = views.get_mut(pos) else {
            return;
        };
        match key.map(|k| E2eKey::new(k.key_id, &k.key)) {
            Some(Ok(k)) if !keys.iter().any(|x| x.key_id() == k.key_id()) => {
                keys.push(k);
                if keys.len() > MAX_KEYS_PER_VIEW {
                    keys.remove(0);
                }
            }
            // a repeated key, an empty key (the wire refuses those) or none: nothing to add
            _ => {}
        }
    }

    /// The flush layer installed `gid`: older views of the group are done with.
    pub(crate) fn on_install(&mut self, group: &GroupName, gid: Gid) {
        if let Some(views) = self.groups.get_mut(group)
            && let Some(p) = views.iter().position(|(g, _)| *g == gid)
        {
            views.drain(..p);
        }
    }

    /// The client left the group.
    pub(crate) fn on_self_leave(&mut self, group: &GroupName) {
        self.groups.remove(group);
    }

    /// The keys of view `gid` of `group`; empty when the view came without key.
    pub(crate) fn of_view(&self, group: &GroupName, gid: Gid) -> &[E2eKey] {
        self.groups
            .get(group)
            .and_then(|v| v.iter().find(|(g, _)| *g == gid))
            .map_or(&[], |(_, k)| k.as_slice())
    }

    /// The key a multicast in view `gid` is encrypted with: the newest of that view.
    pub(crate) fn sending(&self, group: &GroupName, gid: Gid) -> Option<&E2eKey> {
        self.of_view(group, gid).last()
    }
}

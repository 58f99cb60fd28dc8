//! Liveness-based arena planner: every intermediate activation gets an offset in one static
//! arena, and buffers whose lifetimes do not overlap share memory, so the arena is sized by
//! the widest point of the network rather than the sum of its activations.

/// One buffer to place: its size and the steps (op indices) between which it must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Size in arena elements.
    pub size: usize,
    /// Step that writes it.
    pub first: usize,
    /// Last step that reads it (inclusive: its reader's own output may not overwrite it).
    pub last: usize,
}

/// Placement of every buffer, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Offset of each buffer in arena elements (multiples of the alignment).
    pub offsets: Vec<usize>,
    /// Arena size in elements.
    pub total: usize,
}

/// Whether two lifetimes share a step, i.e. the buffers may not share memory.
fn overlaps(a: &Buffer, b: &Buffer) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// Greedy first-fit placement, largest buffers first: each buffer takes the lowest aligned
/// offset that no already placed buffer with an overlapping lifetime occupies. Placing the
/// large ones first keeps the small ones from fragmenting the arena. `align` of 0 counts as 1.
/// Returns `None` when the arena size overflows `usize`.
pub fn plan(buffers: &[Buffer], align: usize) -> Option<Plan> {
    let align = align.max(1);
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), buffers[i].first, i));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0usize;
    for i in order {
        let b = &buffers[i];
        // Occupied ranges of conflicting buffers, sorted by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| overlaps(&buffers[p], b))
            .map(|&p| (offsets[p], offsets[p] + buffers[p].size))
            .collect();
        busy.sort_unstable();
        let mut at = 0usize;
        for (lo, hi) in busy {
            if at.checked_add(b.size)? <= lo {
                break;
            }
            at = at.max(hi.checked_next_multiple_of(align)?);
        }
        offsets[i] = at;
        total = total.max(at.checked_add(b.size)?);
        placed.push(i);
    }
    Some(Plan { offsets, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_no_conflict(bufs: &[Buffer], p: &Plan) {
        for i in 0..bufs.len() {
            assert!(p.offsets[i] + bufs[i].size <= p.total);
            for j in i + 1..bufs.len() {
                if overlaps(&bufs[i], &bufs[j]) && bufs[i].size > 0 && bufs[j].size > 0 {
                    let (a0, a1) = (p.offsets[i], p.offsets[i] + bufs[i].size);
                    let (b0, b1) = (p.offsets[j], p.offsets[j] + bufs[j].size);
                    assert!(a1 <= b0 || b1 <= a0, "buffers {i} and {j} collide: {p:?}");
                }
            }
        }
    }

    #[test]
    fn chain_reuses_two_slots() {
        // A chain a→b→c→d: each buffer lives from its producer to its consumer.
        let bufs: Vec<Buffer> = (0..4)
            .map(|s| Buffer {
                size: 100,
                first: s,
                last: s + 1,
            })
            .collect();
        let p = plan(&bufs, 4).unwrap();
        check_no_conflict(&bufs, &p);
        assert_eq!(p.total, 200);
        assert_eq!(p.offsets, vec![0, 100, 0, 100]);
    }

    #[test]
    fn simultaneously_live_buffers_get_disjoint_ranges() {
        let mut rng = strata_test_support::XorShift::from_state(12345);
        let mut next = |m: u64| rng.below(m) as usize;
        for _ in 0..50 {
            let bufs: Vec<Buffer> = (0..20)
                .map(|_| {
                    let first = next(30);
                    Buffer {
                        size: next(500),
                        first,
                        last: first + next(8),
                    }
                })
                .collect();
            let p = plan(&bufs, 4).unwrap();
            check_no_conflict(&bufs, &p);
            assert!(p.offsets.iter().all(|o| o % 4 == 0));
            // Never worse than giving every buffer its own memory (plus alignment).
            let naive: usize = bufs.iter().map(|b| b.size.next_multiple_of(4)).sum();
            assert!(p.total <= naive);
        }
    }

    #[test]
    fn alignment_and_overflow() {
        let bufs = [
            Buffer {
                size: 3,
                first: 0,
                last: 1,
            },
            Buffer {
                size: 5,
                first: 1,
                last: 2,
            },
        ];
        let p = plan(&bufs, 8).unwrap();
        assert_eq!(p.offsets, vec![8, 0]);
        assert_eq!(p.total, 11);
        let huge = [
            Buffer {
                size: usize::MAX - 2,
                first: 0,
                last: 1,
            },
            Buffer {
                size: 10,
                first: 0,
                last: 1,
            },
        ];
        assert_eq!(plan(&huge, 4), None);
        assert_eq!(plan(&[], 4).unwrap().total, 0);
    }
}

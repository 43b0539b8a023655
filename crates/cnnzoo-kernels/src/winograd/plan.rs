//! How a Winograd convolution is cut up: the [`Plan`] (its geometry in tiles), the [`Block`]s
//! of tiles and output channels that one worker takes start to finish, and each worker's
//! [`Scratch`] buffers, kept between calls.

use super::{COLS, M, R};
use crate::geometry::ConvGeometry;

/// The geometry of one Winograd convolution on NCHW data.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) batch: usize,
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) top: usize,
    pub(super) left: usize,
    /// Tiles per column and per row of one image.
    pub(super) th: usize,
    pub(super) tw: usize,
}

impl Plan {
    pub(super) fn new(g: &ConvGeometry) -> Self {
        let [oh, ow] = g.out_size().expect("validated geometry");
        Plan {
            batch: g.batch,
            cin: g.in_channels,
            cout: g.out_channels,
            h: g.in_size[0],
            w: g.in_size[1],
            oh,
            ow,
            top: g.padding[0].0,
            left: g.padding[1].0,
            th: oh.div_ceil(M),
            tw: ow.div_ceil(M),
        }
    }
}

/// One worker's buffers.
pub(super) struct Scratch {
    /// A padded input row (its padding columns stay zero: only the interior is written) and
    /// a row of zeros, both long enough for whole groups of eight tiles.
    pub(super) row: Vec<f32>,
    pub(super) zeros: Vec<f32>,
    /// One output row of the block's tiles before the epilogue.
    pub(super) yrow: Vec<f32>,
    /// Padded input rows of the tile rows that share a vector ([`rows_per_vector`]), each
    /// `ROW_STRIDE` long, for padding other than 1 column; their padding stays zero, as in
    /// `row`.
    pub(super) rows: Vec<f32>,
    /// Patches of one channel transformed along their rows, `[6][6][tiles]`.
    pub(super) half: Vec<f32>,
    /// Transformed input of the block, `[36][C][tiles]`.
    pub(super) v: Vec<f32>,
    /// Products, `[36][K chunk][tiles]`.
    pub(super) m: Vec<f32>,
    /// Products of one channel transformed along their columns, `[4][6][tiles]`.
    pub(super) f: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers, in field order, to at least the lengths `need` (growth adds zeros;
    /// what earlier calls left is finite and lands only in columns whose results are dropped),
    /// and zeroes the padded row, whose padding must be zero for this call's geometry.
    pub(super) fn fit(&mut self, need: &[usize; 8]) {
        let bufs = [
            &mut self.row,
            &mut self.zeros,
            &mut self.yrow,
            &mut self.rows,
            &mut self.half,
            &mut self.v,
            &mut self.m,
            &mut self.f,
        ];
        for (have, &len) in bufs.into_iter().zip(need) {
            if have.len() < len {
                have.resize(len, 0.0);
            }
        }
        self.row.fill(0.0);
        self.rows.fill(0.0);
    }
}

thread_local! {
    /// Each worker's buffers, kept from call to call: allocating and zeroing them per call
    /// cost as much as the input transform.
    pub(super) static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            row: Vec::new(),
            zeros: Vec::new(),
            yrow: Vec::new(),
            rows: Vec::new(),
            half: Vec::new(),
            v: Vec::new(),
            m: Vec::new(),
            f: Vec::new(),
        })
    };
}

/// One block: tiles `tiles` of the whole batch, numbered row by row through the images (tile
/// `t` is in tile row `gr = t / tw`, which is tile row `gr % th` of image `gr / th`), times
/// output channels `chans`.
#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) tiles: std::ops::Range<usize>,
    pub(super) chans: std::ops::Range<usize>,
    /// Tiles in the block padded to the product tile: the row length of V and M (V's padding
    /// columns hold finite leftovers; their products are dropped).
    pub(super) np: usize,
    /// Row length of the patch buffers and of the output transform's: room for a last group
    /// of eight tiles that runs past `n`.
    pub(super) ps: usize,
    /// Output channels padded to the product tile: the rows of M.
    pub(super) kc: usize,
}

impl Block {
    pub(super) fn new(tiles: std::ops::Range<usize>, chans: std::ops::Range<usize>) -> Self {
        let np = tiles.len().next_multiple_of(COLS);
        let kc = chans.len().next_multiple_of(R);
        Block {
            tiles,
            chans,
            np,
            ps: np + 8,
            kc,
        }
    }
}

/// The block's tiles as runs within tile rows: `(image, tile row in the image, first tile,
/// end tile, index of the first in the block)`.
pub(super) fn runs(
    p: &Plan,
    b: &Block,
) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> {
    let (tw, th, tiles) = (p.tw, p.th, b.tiles.clone());
    (tiles.start / tw..tiles.end.div_ceil(tw)).map(move |gr| {
        let a = tiles.start.max(gr * tw) - gr * tw;
        let e = tiles.end.min((gr + 1) * tw) - gr * tw;
        (gr / th, gr % th, a, e, gr * tw + a - tiles.start)
    })
}

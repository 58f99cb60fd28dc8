//! The QAT tables sidecar end to end in the driver: the `.npz` reader against numpy's own
//! output and against lying archives, the sidecar's checks, and the round trip: a model
//! compiled the ordinary way, its quantization written as a sidecar and packaged again with
//! `compile_with_tables`, gives the same graph bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_compiler::compile::{
    compile_with_context, compile_with_tables, CompileError, CompileOptions, Provenance,
};
use strata_compiler::npy::npz::{decode_npz, read_npz, ArchiveError, NpzLimits};
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_compiler::qat_tables::{parse, SidecarError, TablesError};
use strata_ir::container::{read_container, write_container, ContainerOptions};
use strata_ir::quant;
use strata_ir::{Graph, Tensor};
use strata_passes::qat_tables::{weight_name, LayerTables, QatTables, QatTablesError};
use strata_passes::{quantizable_layers, PassContext, PassManager, VlQuantization};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::npz::{npz, sidecar_arrays, zip, Member};
use strata_test_support::{mnist, repo_root};

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/qat_tables").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-qat-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `graph` after the passes that run before the tables are matched.
fn prepared(mut graph: Graph) -> Graph {
    PassManager::parse(strata_compiler::compile::TABLES_PREPARE)
        .unwrap()
        .run(&mut graph, &mut PassContext::default(), |_, _| {})
        .unwrap();
    graph
}

fn tiny() -> Graph {
    import_file(&fixture("tiny.onnx"), &ImportOptions::default()).unwrap()
}

/// The tables `scripts/make_qat_tables_fixtures.py` writes, recomputed from the model.
fn expected_tiny_tables() -> QatTables {
    let g = prepared(tiny());
    let mut layers = BTreeMap::new();
    for l in quantizable_layers(&g).unwrap() {
        let (_, scales) = quant::quantize_rows(&l.weight, l.rows, l.cols, 8).unwrap();
        let tables = [2u8, 4, 8]
            .iter()
            .map(|&k| {
                let alpha: Vec<f32> = scales.iter().map(|s| s * (1 << (8 - k)) as f32).collect();
                strata_passes::SideTable {
                    k,
                    beta: alpha.iter().map(|a| a / 2.0).collect(),
                    alpha,
                    bias: l.bias.clone(),
                    act_scale: (0.02f64 * k as f64) as f32,
                    act_zero: -(k as f32),
                }
            })
            .collect();
        layers.insert(weight_name(&g, &l).unwrap(), LayerTables { scales, tables });
    }
    QatTables {
        bits: 8,
        act_bits: 8,
        planes: vec![2, 4, 8],
        layers,
    }
}

#[test]
fn numpy_savez_and_savez_compressed_are_read() {
    let stored = read_npz(&fixture("tables.npz"), &NpzLimits::default()).unwrap();
    let deflated = read_npz(&fixture("tables_compressed.npz"), &NpzLimits::default()).unwrap();
    assert_eq!(stored.len(), 4 + 2 * (1 + 4 * 3));
    assert_eq!(stored, deflated);
    assert_eq!(stored[0].name, "strata/format");
    assert_eq!(stored[0].tensor.as_i64(), Some(&[1i64][..]));
    let want = expected_tiny_tables();
    assert_eq!(want.layers.len(), 2);
    assert!(want.layers.contains_key("fc.weight") && want.layers.contains_key("head.weight"));
    for file in ["tables.npz", "tables_compressed.npz"] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        let got = parse(&bytes, &NpzLimits::default()).unwrap();
        // Bit for bit: numpy's float32 arithmetic and ours agree on every entry.
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn the_numpy_sidecar_packages_the_tiny_model() {
    let (bytes, ctx) = compile_with_tables(
        tiny(),
        &fixture("tables_compressed.npz"),
        BTreeMap::new(),
        |_| {},
    )
    .unwrap();
    let q = VlQuantization::from_context(&ctx).unwrap();
    assert_eq!(
        (q.bits, q.act_bits, q.method),
        (8, quant::ActBits::Fixed(8), None)
    );
    assert_eq!(q.layers.len(), 2);
    assert_eq!(q.layers[0].tables[1].act_zero, -4.0);
    let loaded = read_container(&bytes).unwrap();
    assert_eq!(
        loaded.metadata["pipeline"],
        "fold-constants,fold-batchnorm,conv-transpose-to-conv,matmul-to-conv,eliminate-dead-code,\
         load-qat-tables,bitplane-rewrite,eliminate-dead-code"
    );
    assert_eq!(loaded.metadata["qat_tables_sha256"].len(), 64);
    assert_eq!(loaded.bits, 8);
    // The float path at k = 8 recomputed from the tables: x̂ = fake_quant(x) with the
    // layer's act params, W_8 = alpha·q_8 + beta, y = W_8·x̂ + bias, ReLU between the layers.
    // Only the half-precision rounding of the stored tables (2^-11 relative) separates them.
    let tables = expected_tiny_tables();
    let g = prepared(tiny());
    let x = vec![0.5f32, -1.0, 0.25, 2.0, -0.75, 1.5, 0.0, 1.0];
    let mut h = x.clone();
    for (i, l) in quantizable_layers(&g).unwrap().iter().enumerate() {
        let t = &tables.layers[&weight_name(&g, l).unwrap()];
        let side = &t.tables[2];
        assert_eq!(side.k, 8);
        let act = quant::ActQuantizer::new(
            quant::ActQuant {
                scale: side.act_scale,
                zero: side.act_zero,
            },
            8,
        )
        .unwrap();
        let q = quant::quantize_with_scales(&l.weight, &t.scales, l.cols, 8).unwrap();
        let xq: Vec<f32> = h.iter().map(|&v| act.fake_quant(v)).collect();
        h = (0..l.rows)
            .map(|r| {
                let dot: f32 = (0..l.cols)
                    .map(|c| (side.alpha[r] * q[r * l.cols + c] as f32 + side.beta[r]) * xq[c])
                    .sum();
                let y = dot + side.bias[r];
                if i == 0 {
                    y.max(0.0)
                } else {
                    y
                }
            })
            .collect();
    }
    let opts = RunOptions {
        planes: Some(8),
        path: QuantPath::Float,
        ..Default::default()
    };
    let input = Tensor::from_f32(vec![1, 8], x).unwrap();
    let y = run_with(&loaded.graph, &[input], &opts).unwrap();
    assert_eq!(y[0].shape(), &[1, 3]);
    for (got, want) in y[0].as_f32().unwrap().iter().zip(&h) {
        assert!(
            (got - want).abs() <= 2e-3 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

/// Writes `t` as a sidecar and returns its path.
fn write_sidecar(name: &str, t: &QatTables, deflate: bool) -> PathBuf {
    let path = tmp(name);
    std::fs::write(&path, npz(&sidecar_arrays(t), deflate)).unwrap();
    path
}

fn match_error(graph: Graph, t: &QatTables, name: &str) -> (String, QatTablesError) {
    let path = write_sidecar(name, t, false);
    let e = compile_with_tables(graph, &path, BTreeMap::new(), |_| {}).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    match e {
        CompileError::Tables(e) => match *e {
            TablesError::Match { source, .. } => (text, *source),
            other => panic!("expected a mismatch, got {other}"),
        },
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn tables_that_do_not_fit_the_model_are_refused_naming_the_layer() {
    let good = expected_tiny_tables();

    let mut t = good.clone();
    let head = t.layers.remove("head.weight").unwrap();
    let (text, e) = match_error(tiny(), &t, "missing.npz");
    assert!(
        matches!(&e, QatTablesError::MissingTable { weight, .. } if weight == "head.weight"),
        "{e}"
    );
    assert!(text.contains("head.weight"), "{text}");

    let mut t = good.clone();
    t.layers.insert("tail.weight".into(), head.clone());
    let (_, e) = match_error(tiny(), &t, "unknown.npz");
    assert!(
        matches!(&e, QatTablesError::UnknownWeight { weight } if weight == "tail.weight"),
        "{e}"
    );

    let mut t = good.clone();
    t.layers.get_mut("fc.weight").unwrap().scales.push(0.1);
    let (text, e) = match_error(tiny(), &t, "rows.npz");
    assert!(
        matches!(&e, QatTablesError::Rows { weight, entry, got: 5, expected: 4, .. }
            if weight == "fc.weight" && entry == "scale"),
        "{e}"
    );
    assert!(text.contains("fc.weight"), "{text}");

    let mut t = good.clone();
    t.layers.get_mut("head.weight").unwrap().tables[2]
        .beta
        .pop();
    let (_, e) = match_error(tiny(), &t, "rows_k8.npz");
    assert!(
        matches!(&e, QatTablesError::Rows { entry, got: 2, expected: 3, .. } if entry == "k8/beta"),
        "{e}"
    );

    let mut t = good.clone();
    t.layers.get_mut("fc.weight").unwrap().tables[1].act_zero = 0.5;
    let (_, e) = match_error(tiny(), &t, "act.npz");
    assert!(
        matches!(&e, QatTablesError::Act { weight, k: 4, source: quant::QuantError::ZeroPoint { .. }, .. }
            if weight == "fc.weight"),
        "{e}"
    );

    let mut t = good.clone();
    t.layers.get_mut("fc.weight").unwrap().tables[0].act_scale = 0.0;
    let (_, e) = match_error(tiny(), &t, "act_scale.npz");
    assert!(
        matches!(
            &e,
            QatTablesError::Act {
                k: 2,
                source: quant::QuantError::ActScale { .. },
                ..
            }
        ),
        "{e}"
    );

    let mut t = good.clone();
    t.layers.get_mut("head.weight").unwrap().tables[0].alpha[1] = f32::NAN;
    let (_, e) = match_error(tiny(), &t, "nan.npz");
    assert!(
        matches!(&e, QatTablesError::NonFinite { weight, entry, index: 1, .. }
            if weight == "head.weight" && entry == "k2/alpha"),
        "{e}"
    );

    let mut t = good.clone();
    t.layers.get_mut("head.weight").unwrap().scales[2] = -0.5;
    let (_, e) = match_error(tiny(), &t, "scale.npz");
    assert!(
        matches!(&e, QatTablesError::Scale { index: 2, value, .. } if *value == -0.5),
        "{e}"
    );
}

#[test]
fn every_error_of_the_model_check_names_node_and_weight() {
    let g = prepared(tiny());
    let good = expected_tiny_tables();
    let node = |w: &str| {
        quantizable_layers(&g)
            .unwrap()
            .into_iter()
            .find(|l| weight_name(&g, l).as_deref() == Some(w))
            .unwrap()
            .name
    };
    // The plane set of one layer differs from the file's (only a hand-built QatTables can
    // say so; the reader asks every group for every listed k).
    let mut t = good.clone();
    t.layers.get_mut("head.weight").unwrap().tables.pop();
    let e = strata_passes::qat_tables::from_tables(&g, &t).unwrap_err();
    assert!(
        matches!(&e, QatTablesError::Planes { node: n, weight, got, expected }
            if *n == node("head.weight") && weight == "head.weight" && got == &[2, 4] && expected == &[2, 4, 8]),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains(&node("head.weight")) && text.contains("head.weight"));
    // Globals built by hand are checked too.
    let mut t = good;
    t.planes = vec![4, 2];
    let e = strata_passes::qat_tables::from_tables(&g, &t).unwrap_err();
    assert!(e.to_string().contains("strictly ascending"), "{e}");
}

fn sidecar_err(arrays: &[(String, Tensor)]) -> SidecarError {
    parse(&npz(arrays, false), &NpzLimits::default()).unwrap_err()
}

fn with(arrays: &[(String, Tensor)], name: &str, t: Option<Tensor>) -> Vec<(String, Tensor)> {
    let mut out: Vec<_> = arrays.iter().filter(|(n, _)| n != name).cloned().collect();
    if let Some(t) = t {
        out.push((name.to_string(), t));
    }
    out
}

#[test]
fn the_sidecar_checks_entries_dtypes_and_values() {
    let good = sidecar_arrays(&expected_tiny_tables());
    let i64s = |shape: Vec<usize>, v: Vec<i64>| Some(Tensor::from_i64(shape, v).unwrap());

    let e = sidecar_err(&with(&good, "strata/format", None));
    assert_eq!(
        e,
        SidecarError::Missing {
            entry: "strata/format".into()
        }
    );
    assert_eq!(e.to_string(), "missing entry `strata/format`");

    let int32 = Tensor::new(vec![], strata_ir::TensorData::I32(vec![8])).unwrap();
    let e = sidecar_err(&with(&good, "strata/bits", Some(int32)));
    assert_eq!(
        e,
        SidecarError::Type {
            entry: "strata/bits".into(),
            expected: "int64 []",
            found: "int32 []".into()
        }
    );

    let f64s = Tensor::new(vec![4], strata_ir::TensorData::F64(vec![0.1; 4])).unwrap();
    let e = sidecar_err(&with(&good, "fc.weight/scale", Some(f64s)));
    assert!(
        matches!(&e, SidecarError::Type { entry, found, .. } if entry == "fc.weight/scale" && found == "float64 [4]"),
        "{e}"
    );

    let e = sidecar_err(&with(&good, "strata/format", i64s(vec![], vec![2])));
    assert!(e.to_string().contains("format 2 is not supported"), "{e}");

    let e = sidecar_err(&with(&good, "strata/bits", i64s(vec![], vec![9])));
    assert!(
        matches!(&e, SidecarError::Value { entry, .. } if entry == "strata/bits"),
        "{e}"
    );

    let e = sidecar_err(&with(&good, "strata/planes", i64s(vec![3], vec![2, 8, 4])));
    assert!(e.to_string().contains("strictly ascending"), "{e}");

    let e = sidecar_err(&with(&good, "strata/planes", i64s(vec![2], vec![2, 4])));
    assert_eq!(
        e,
        SidecarError::ExtraPlane {
            weight: "fc.weight".into(),
            k: 8,
            planes: vec![2, 4]
        }
    );

    let e = sidecar_err(&with(&good, "head.weight/k4/beta", None));
    assert_eq!(
        e,
        SidecarError::Missing {
            entry: "head.weight/k4/beta".into()
        }
    );

    let stray = Tensor::scalar_f32(1.0);
    let e = sidecar_err(&with(&good, "fc.weight/k4/gamma", Some(stray)));
    assert!(
        matches!(&e, SidecarError::Unknown { entry } if entry == "fc.weight/k4/gamma"),
        "{e}"
    );

    let act3 = Tensor::from_f32(vec![3], vec![0.1, 0.0, 0.0]).unwrap();
    let e = sidecar_err(&with(&good, "fc.weight/k2/act", Some(act3)));
    assert!(
        matches!(&e, SidecarError::Type { entry, expected: "float32 [2]", .. } if entry == "fc.weight/k2/act"),
        "{e}"
    );
}

/// The bytes of a small valid archive with one stored member `a.npy`.
fn one_member() -> Vec<u8> {
    zip(&[Member::npy(
        "a",
        &Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).unwrap(),
    )])
}

fn archive_err(bytes: &[u8], caps: &NpzLimits) -> ArchiveError {
    decode_npz(bytes, caps).unwrap_err()
}

#[test]
fn corrupt_and_truncated_archives_are_refused() {
    let caps = NpzLimits::default();
    assert_eq!(decode_npz(&one_member(), &caps).unwrap()[0].name, "a");
    assert!(matches!(
        archive_err(b"not a zip at all, just text", &caps),
        ArchiveError::Format { .. }
    ));
    assert!(matches!(
        archive_err(&[], &caps),
        ArchiveError::Format { .. }
    ));

    // numpy's own file, cut anywhere, is refused without a panic.
    let real = std::fs::read(fixture("tables_compressed.npz")).unwrap();
    for cut in [10, real.len() / 2, real.len() - 30, real.len() - 1] {
        let e = archive_err(&real[..cut], &caps);
        assert!(
            e.to_string().contains("end-of-central-directory"),
            "{cut}: {e}"
        );
    }
    // Every single flipped byte of it: an error or the same arrays, never a panic.
    let want = decode_npz(&real, &caps).unwrap();
    for at in (0..real.len()).step_by(7) {
        let mut bad = real.clone();
        bad[at] ^= 0x5a;
        if let Ok(got) = decode_npz(&bad, &caps) {
            assert_eq!(got.len(), want.len());
        }
    }

    // Data corrupted in place: the CRC names the member.
    let mut bad = one_member();
    let at = bad.windows(6).position(|w| w == b"\x93NUMPY").unwrap() + 80;
    bad[at] ^= 1;
    let e = archive_err(&bad, &caps);
    assert_eq!(e.member(), Some("a.npy"));
    assert!(e.to_string().contains("CRC-32"), "{e}");

    // A compressed size running past the data.
    let mut bad = one_member();
    let cd = bad
        .windows(4)
        .rposition(|w| w == 0x0201_4b50u32.to_le_bytes())
        .unwrap();
    bad[cd + 20..cd + 24].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let e = archive_err(&bad, &caps);
    assert_eq!(e.member(), Some("a.npy"));
    assert!(e.to_string().contains("run past the member data"), "{e}");

    // An unsupported compression method (bzip2).
    let mut bad = one_member();
    bad[cd + 10..cd + 12].copy_from_slice(&12u16.to_le_bytes());
    let e = archive_err(&bad, &caps);
    assert!(e.to_string().contains("compression method 12"), "{e}");

    // Members that are not .npy, twice the same name, a broken .npy.
    let e = archive_err(&zip(&[Member::raw("notes.txt", b"hi".to_vec())]), &caps);
    assert_eq!(e.member(), Some("notes.txt"));
    let a = Member::npy("a", &Tensor::scalar_f32(1.0));
    let e = archive_err(&zip(&[a.clone(), a]), &caps);
    assert!(e.to_string().contains("appears twice"), "{e}");
    let e = archive_err(
        &zip(&[Member::raw("b.npy", b"\x93NUMPY junk".to_vec())]),
        &caps,
    );
    assert!(
        matches!(&e, ArchiveError::Npy { member, .. } if member == "b.npy"),
        "{e}"
    );
}

#[test]
fn sizes_are_checked_before_anything_is_inflated() {
    let caps = NpzLimits::default();
    // A member declaring 100 GB (a ZIP64 size): refused from the directory alone.
    let mut huge = Member::npy("huge", &Tensor::scalar_f32(1.0));
    huge.declared_size = Some(100_000_000_000);
    let e = archive_err(&zip(&[huge]), &caps);
    assert_eq!(
        e,
        ArchiveError::MemberTooLarge {
            member: "huge.npy".into(),
            size: 100_000_000_000,
            limit: caps.max_member_bytes
        }
    );
    // A zip bomb: 4 MiB of zeros deflate to a few KiB but declare 1000 bytes. Inflation
    // stops at 1001.
    let mut bomb = Member::raw("bomb.npy", vec![0; 4 << 20]).deflated();
    bomb.declared_size = Some(1000);
    let archive = zip(&[bomb]);
    assert!(archive.len() < 64 << 10, "{}", archive.len());
    let e = archive_err(&archive, &caps);
    assert_eq!(e.member(), Some("bomb.npy"));
    assert!(
        e.to_string()
            .contains("inflates to more than the 1000 bytes"),
        "{e}"
    );
    // Caps on members and on the total.
    let small = NpzLimits {
        max_members: 1,
        max_member_bytes: 1 << 20,
        max_total_bytes: 1 << 20,
    };
    let two = zip(&[
        Member::npy("a", &Tensor::scalar_f32(1.0)),
        Member::npy("b", &Tensor::scalar_f32(2.0)),
    ]);
    assert_eq!(
        archive_err(&two, &small),
        ArchiveError::TooManyMembers { count: 2, limit: 1 }
    );
    let tight = NpzLimits {
        max_members: 2,
        max_member_bytes: 200,
        max_total_bytes: 200,
    };
    assert!(matches!(
        archive_err(&two, &tight),
        ArchiveError::TotalTooLarge { member, .. } if member == "b.npy"
    ));
}

#[test]
fn a_sidecar_larger_than_the_model_could_need_is_refused() {
    // The tiny model's widest layer has 4 rows: an [R] array of a million floats cannot be
    // one of its tables and is refused before it is read.
    let mut arrays = sidecar_arrays(&expected_tiny_tables());
    arrays.push((
        "fc.weight/k9/alpha".into(),
        Tensor::from_f32(vec![1 << 20], vec![0.0; 1 << 20]).unwrap(),
    ));
    let path = tmp("oversized.npz");
    std::fs::write(&path, npz(&arrays, true)).unwrap();
    let e = compile_with_tables(tiny(), &path, BTreeMap::new(), |_| {}).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("fc.weight/k9/alpha.npy") && text.contains("more than the limit"),
        "{text}"
    );
    assert!(text.contains("oversized.npz"), "{text}");
}

/// The sidecar of a compile's quantization, keyed by weight names in `prepared`.
fn tables_of(prepared: &Graph, q: &VlQuantization) -> QatTables {
    let by_node: BTreeMap<String, String> = quantizable_layers(prepared)
        .unwrap()
        .iter()
        .map(|l| (l.name.clone(), weight_name(prepared, l).unwrap()))
        .collect();
    QatTables {
        bits: q.bits,
        act_bits: match q.act_bits {
            quant::ActBits::Fixed(a) => a,
            quant::ActBits::Planes => panic!("the sidecar holds one activation width"),
        },
        planes: q.plane_counts.clone(),
        layers: q
            .layers
            .iter()
            .map(|l| {
                (
                    by_node[&l.name].clone(),
                    LayerTables {
                        scales: l.scales.clone(),
                        tables: l.tables.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// A container's graph re-serialised without metadata: equal bytes, equal models.
fn graph_bytes(container: &[u8]) -> Vec<u8> {
    let loaded = read_container(container).unwrap();
    write_container(&loaded.graph, &ContainerOptions::default()).unwrap()
}

#[test]
fn an_ordinary_compile_round_trips_through_a_sidecar() {
    let calib = mnist::fixture("calib");
    let per: usize = calib.shape()[1..].iter().product();
    let mut shape = calib.shape().to_vec();
    shape[0] = 32;
    let calib = Tensor::from_f32(shape, calib.as_f32().unwrap()[..32 * per].to_vec()).unwrap();
    let options = CompileOptions {
        planes: vec![2, 3, 4, 6, 8],
        ..CompileOptions::default()
    };
    let (ordinary, ctx) = compile_with_context(
        mnist::fp32(),
        vec![calib],
        &options,
        BTreeMap::new(),
        |_| {},
    )
    .unwrap();
    let q = VlQuantization::from_context(&ctx).unwrap();
    let tables = tables_of(&prepared(mnist::fp32()), q);
    assert_eq!(tables.layers.len(), q.layers.len());
    assert!(tables.layers.len() >= 3);

    let images = mnist::fixture("images");
    let shape = [16, 1, 28, 28];
    let images = Tensor::from_f32(
        shape.to_vec(),
        images.as_f32().unwrap()[..16 * 784].to_vec(),
    )
    .unwrap();
    let ordinary_graph = read_container(&ordinary).unwrap().graph;
    for deflate in [false, true] {
        let path = write_sidecar(&format!("mnist_{deflate}.npz"), &tables, deflate);
        let meta = Provenance::new("m.onnx", b"", &[], &options, &[])
            .with_qat_tables(Path::new("mnist.tables.npz"))
            .to_metadata();
        let (packaged, _) = compile_with_tables(mnist::fp32(), &path, meta, |_| {}).unwrap();
        assert_eq!(
            graph_bytes(&packaged),
            graph_bytes(&ordinary),
            "deflate {deflate}"
        );
        let loaded = read_container(&packaged).unwrap();
        assert_eq!(loaded.metadata["qat_tables"], "mnist.tables.npz");
        assert!(!loaded.metadata.contains_key("calibration_method"));
        for k in [2, 4, 8] {
            for path in [QuantPath::Float, QuantPath::Integer] {
                let o = RunOptions {
                    planes: Some(k),
                    path,
                    ..Default::default()
                };
                let a = run_with(&ordinary_graph, std::slice::from_ref(&images), &o).unwrap();
                let b = run_with(&loaded.graph, std::slice::from_ref(&images), &o).unwrap();
                let bits = |t: &Tensor| -> Vec<u32> {
                    t.as_f32().unwrap().iter().map(|v| v.to_bits()).collect()
                };
                assert_eq!(bits(&a[0]), bits(&b[0]), "k = {k}, {path:?}");
            }
        }
    }
}

#[test]
fn the_build_script_api_packages_with_tables() {
    use strata_compiler::build::{Build, BuildError};
    let tables = fixture("tables.npz");
    let built = Build::new(fixture("tiny.onnx"))
        .qat_tables(&tables)
        .cargo_metadata(false)
        .strata_bytes()
        .unwrap();
    let (direct, _) = compile_with_tables(tiny(), &tables, BTreeMap::new(), |_| {}).unwrap();
    assert_eq!(graph_bytes(&built), graph_bytes(&direct));
    let meta = read_container(&built).unwrap().metadata;
    assert_eq!(meta["qat_tables"], tables.display().to_string());
    assert_eq!(
        meta["qat_tables_sha256"],
        read_container(&direct).unwrap().metadata["qat_tables_sha256"]
    );
    assert!(!meta.contains_key("calibration"));
    let e = Build::new(fixture("tiny.onnx"))
        .qat_tables(&tables)
        .compile_options(CompileOptions::default())
        .cargo_metadata(false)
        .strata_bytes()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::WithQatTables {
                what: "compile_options",
                ..
            }
        ),
        "{e}"
    );
}

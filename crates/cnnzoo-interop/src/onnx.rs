//! ONNX export: a model's traced inference graph ([`cnnzoo_models::graph`]) as an ONNX file.
//!
//! The messages are the `onnx-protobuf` crate's (generated from ONNX's own `onnx.proto`); this
//! module only maps cnnzoo's operations onto ONNX operators. Every operation used exists with
//! the same meaning from opset 13 on, so one mapping serves opsets 13 to 21.

use std::path::Path;

use cnnzoo_models::Model;
use cnnzoo_models::graph::{Activation, ConvPadding, Graph, Op, Value, Window};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType, type_proto,
};

use crate::error::InteropError;

/// Opsets the exporter writes.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// The opset written when none is asked for.
pub const DEFAULT_OPSET: i64 = 17;

/// How the exported graph's input is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxOptions {
    /// ONNX operator set version (see [`OPSETS`]).
    pub opset: i64,
    /// A fixed batch size, or `None` for a dynamic `batch` dimension.
    pub batch: Option<usize>,
    /// Input height and width.
    pub size: [usize; 2],
}

/// Builds the ONNX model of `model`'s inference pass.
pub fn to_onnx(model: &Model, options: &OnnxOptions) -> Result<ModelProto, InteropError> {
    if !OPSETS.contains(&options.opset) {
        return Err(InteropError::Unsupported(format!(
            "opset {} (the exporter writes opsets {} to {})",
            options.opset,
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let graph = model
        .graph()
        .map_err(|e| InteropError::Unsupported(e.to_string()))?;
    let mut w = Writer::new(&graph);
    for node in &graph.nodes {
        w.node(&graph, node);
    }
    let batch = match options.batch {
        Some(n) => Dim::Fixed(n),
        None => Dim::Named("batch"),
    };
    let [h, wd] = options.size;
    let input = value_info(
        "input",
        &[
            batch,
            Dim::Fixed(graph.in_channels),
            Dim::Fixed(h),
            Dim::Fixed(wd),
        ],
    );
    let output = value_info("logits", &[batch, Dim::Fixed(graph.num_classes)]);
    let g = GraphProto {
        name: "cnnzoo".to_string(),
        node: w.nodes,
        initializer: w.initializers,
        input: vec![input],
        output: vec![output],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: if options.opset <= 18 { 8 } else { 9 },
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
            ..Default::default()
        }],
        producer_name: "cnnzoo".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph: Some(g).into(),
        ..Default::default()
    })
}

/// Writes `model` as ONNX to `path` through a temporary file beside it, so that a failed
/// export leaves no partial file. Returns the number of operators written.
pub fn save_onnx(model: &Model, path: &Path, options: &OnnxOptions) -> Result<usize, InteropError> {
    let proto = to_onnx(model, options)?;
    let count = proto.graph.node.len();
    let bytes = proto
        .write_to_bytes()
        .map_err(|e| InteropError::Unsupported(format!("cannot encode the ONNX model: {e}")))?;
    crate::save::write_atomically(path, &bytes)?;
    Ok(count)
}

#[derive(Clone, Copy)]
enum Dim {
    Fixed(usize),
    Named(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| {
            let mut dim = Dimension::new();
            match d {
                Dim::Fixed(n) => dim.set_dim_value(*n as i64),
                Dim::Named(s) => dim.set_dim_param((*s).to_string()),
            }
            dim
        })
        .collect();
    let mut t = TypeProto::new();
    t.set_tensor_type(type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: Some(TensorShapeProto {
            dim,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    });
    ValueInfoProto {
        name: name.to_string(),
        type_: Some(t).into(),
        ..Default::default()
    }
}

/// Accumulates ONNX nodes and initializers, naming every value once.
struct Writer {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: Vec<String>,
    taken: std::collections::HashSet<String>,
    written: Vec<bool>,
    /// The name the next emitted node's output takes instead of a fresh one.
    output: Option<String>,
}

impl Writer {
    fn new(graph: &Graph) -> Self {
        let mut names = vec![String::new(); graph.value_count()];
        names[graph.input.0] = "input".to_string();
        Writer {
            nodes: Vec::new(),
            initializers: Vec::new(),
            names,
            taken: ["input".to_string(), "logits".to_string()].into(),
            written: vec![false; graph.weights.len()],
            output: None,
        }
    }

    fn name_of(&self, v: Value) -> &str {
        &self.names[v.0]
    }

    /// A fresh value name from the node's path (paths repeat only for generated helpers).
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }

    /// The initializer of graph weight `i`, written once, by its module path.
    fn weight(&mut self, graph: &Graph, i: usize) -> String {
        let w = &graph.weights[i];
        if !self.written[i] {
            self.written[i] = true;
            self.initializers
                .push(float_tensor(&w.name, &w.shape, &w.data));
        }
        w.name.clone()
    }

    /// An int64 constant for an operator's shape-like input.
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        let name = self.fresh(name);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: DataType::INT64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn emit(
        &mut self,
        name: &str,
        op_type: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
    ) -> String {
        // The logits keep the graph interface's name.
        let out = match self.output.take() {
            Some(out) => out,
            None => self.fresh(name),
        };
        self.nodes.push(NodeProto {
            name: name.to_string(),
            op_type: op_type.to_string(),
            input: inputs,
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    fn node(&mut self, graph: &Graph, node: &cnnzoo_models::graph::Node) {
        let mut inputs: Vec<String> = node
            .inputs
            .iter()
            .map(|v| self.name_of(*v).to_string())
            .collect();
        let name = node.name.as_str();
        if node.output == graph.output {
            self.output = Some("logits".to_string());
        }
        let out = match &node.op {
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                dilation,
                groups,
            } => {
                let shape = &graph.weights[*weight].shape;
                let kernel = [shape[2] as i64, shape[3] as i64];
                inputs.push(self.weight(graph, *weight));
                if let Some(b) = bias {
                    inputs.push(self.weight(graph, *b));
                }
                let mut attrs = vec![
                    ints("kernel_shape", &kernel),
                    ints("strides", &as_i64(stride)),
                    ints("dilations", &as_i64(dilation)),
                    int("group", *groups as i64),
                ];
                attrs.push(match padding {
                    ConvPadding::Explicit(p) => ints("pads", &as_i64(p)),
                    ConvPadding::SameUpper => string("auto_pad", "SAME_UPPER"),
                });
                self.emit(name, "Conv", inputs, attrs)
            }
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                epsilon,
            } => {
                for w in [gamma, beta, mean, var] {
                    inputs.push(self.weight(graph, *w));
                }
                let attrs = vec![float("epsilon", *epsilon as f32)];
                self.emit(name, "BatchNormalization", inputs, attrs)
            }
            Op::Activation(a) => {
                let op = match a {
                    Activation::Relu => "Relu",
                    Activation::Sigmoid => "Sigmoid",
                    Activation::Tanh => "Tanh",
                };
                self.emit(name, op, inputs, Vec::new())
            }
            Op::MaxPool(window) => self.emit(name, "MaxPool", inputs, window_attrs(window)),
            Op::AvgPool {
                window,
                count_include_pad,
            } => {
                let mut attrs = window_attrs(window);
                attrs.push(int("count_include_pad", i64::from(*count_include_pad)));
                self.emit(name, "AveragePool", inputs, attrs)
            }
            Op::Add => self.emit(name, "Add", inputs, Vec::new()),
            Op::Mul => self.emit(name, "Mul", inputs, Vec::new()),
            Op::Concat => self.emit(name, "Concat", inputs, vec![int("axis", 1)]),
            Op::GlobalAvgPool => self.emit(name, "GlobalAveragePool", inputs, Vec::new()),
            Op::Flatten => self.emit(name, "Flatten", inputs, vec![int("axis", 1)]),
            Op::Linear { weight, bias } => {
                inputs.push(self.weight(graph, *weight));
                if let Some(b) = bias {
                    inputs.push(self.weight(graph, *b));
                }
                self.emit(name, "Gemm", inputs, Vec::new())
            }
            Op::Subsample { stride } => {
                let s = *stride as i64;
                inputs.push(self.ints(&format!("{name}.starts"), &[0, 0]));
                inputs.push(self.ints(&format!("{name}.ends"), &[i64::MAX, i64::MAX]));
                inputs.push(self.ints(&format!("{name}.axes"), &[2, 3]));
                inputs.push(self.ints(&format!("{name}.steps"), &[s, s]));
                self.emit(name, "Slice", inputs, Vec::new())
            }
            Op::PadChannels { extra } => {
                let pads = [0, 0, 0, 0, 0, *extra as i64, 0, 0];
                inputs.push(self.ints(&format!("{name}.pads"), &pads));
                self.emit(name, "Pad", inputs, Vec::new())
            }
        };
        self.names[node.output.0] = out;
    }
}

fn as_i64<const N: usize>(v: &[usize; N]) -> [i64; N] {
    v.map(|x| x as i64)
}

fn window_attrs(w: &Window) -> Vec<AttributeProto> {
    let (k, s, p) = (w.kernel as i64, w.stride as i64, w.padding as i64);
    vec![
        ints("kernel_shape", &[k, k]),
        ints("strides", &[s, s]),
        ints("pads", &[p, p, p, p]),
        int("ceil_mode", i64::from(w.ceil_mode)),
    ]
}

fn float_tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::FLOAT as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: kind.into(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::INT)
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::INTS)
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::FLOAT)
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: v.as_bytes().to_vec(),
        ..attr(name, AttributeType::STRING)
    }
}

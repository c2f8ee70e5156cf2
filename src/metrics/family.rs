//! Metric families built at scrape time by custom collectors.

use prometheus::core::Desc;
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

/// A family's definition: its registered descriptor and its type.
pub(crate) struct FamilyDef {
    pub desc: Desc,
    kind: MetricType,
}

impl FamilyDef {
    pub fn new(name: &str, help: &str, labels: &[&str], kind: MetricType) -> Self {
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            labels.iter().map(|l| l.to_string()).collect(),
            Default::default(),
        )
        .expect("valid metric definition");
        Self { desc, kind }
    }

    pub fn counter(name: &str, help: &str, labels: &[&str]) -> Self {
        Self::new(name, help, labels, MetricType::COUNTER)
    }

    pub fn gauge(name: &str, help: &str, labels: &[&str]) -> Self {
        Self::new(name, help, labels, MetricType::GAUGE)
    }

    /// A family with `samples`, each a set of label values (in the order
    /// the family declares its labels) and a value.
    pub fn family<'a, L>(&self, samples: impl IntoIterator<Item = (L, f64)>) -> MetricFamily
    where
        L: IntoIterator<Item = &'a str>,
    {
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(self.kind);
        let metrics = samples
            .into_iter()
            .map(|(values, value)| {
                let labels = self
                    .desc
                    .variable_labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = LabelPair::default();
                        pair.set_name(name.clone());
                        pair.set_value(value.to_owned());
                        pair
                    })
                    .collect();
                let mut metric = proto::Metric::default();
                metric.set_label(labels);
                match self.kind {
                    MetricType::COUNTER => {
                        let mut c = proto::Counter::default();
                        c.set_value(value);
                        metric.set_counter(c);
                    }
                    _ => {
                        let mut g = proto::Gauge::default();
                        g.set_value(value);
                        metric.set_gauge(g);
                    }
                }
                metric
            })
            .collect();
        family.set_metric(metrics);
        family
    }

    /// A family with one unlabelled sample.
    pub fn single(&self, value: f64) -> MetricFamily {
        self.family([([""; 0], value)])
    }
}

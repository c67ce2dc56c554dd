//! The topology methods of a connection: `exchange.declare/delete/bind/unbind` and
//! `queue.declare/bind/unbind/purge/delete`, in the connection's vhost. Exchanges and bindings
//! are metadata in the model; a declared queue gets its actor (`queue.rs`).

use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, exchange, queue};
use amq_protocol::types::FieldTable;
use broker::messaging::Messaging;

use super::{Conn, random_suffix};
use crate::error::Fail;
use crate::model::{Binding, Dest, Exchange, Kind};
use crate::props::short;
use crate::queue::{Cmd, QueueHandle, QueueSpec};

impl<M: Messaging> Conn<M> {
    pub(super) async fn exchange_method(&mut self, ch: u16, m: exchange::AMQPMethod) -> Result<(), Fail> {
        let shared = self.shared.clone();
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                let kind = Kind::parse(d.kind.as_str());
                if kind.is_none() && !d.passive {
                    return Err(Fail::command_invalid(format!("unknown exchange type '{}'", d.kind.as_str())));
                }
                {
                    let vhost = self.vhost.as_str();
                    let mut model = shared.model.write().unwrap_or_else(|e| e.into_inner());
                    let v = model.vhost_existing_mut(vhost)?;
                    match v.exchanges.get(name) {
                        Some(x) => {
                            if !d.passive {
                                if name.is_empty() {
                                    return Err(Fail::access_refused(
                                        "operation not permitted on the default exchange",
                                    ));
                                }
                                let inequivalent = |arg: &str, got: String, have: String| {
                                    Fail::precondition(format!(
                                        "inequivalent arg '{arg}' for exchange '{name}' in vhost '{vhost}': received '{got}' but current is '{have}'"
                                    ))
                                };
                                if Some(x.kind) != kind {
                                    return Err(inequivalent(
                                        "type",
                                        d.kind.as_str().to_owned(),
                                        x.kind.as_str().to_owned(),
                                    ));
                                }
                                if x.durable != d.durable {
                                    return Err(inequivalent("durable", d.durable.to_string(), x.durable.to_string()));
                                }
                                if x.auto_delete != d.auto_delete {
                                    return Err(inequivalent(
                                        "auto_delete",
                                        d.auto_delete.to_string(),
                                        x.auto_delete.to_string(),
                                    ));
                                }
                                if x.internal != d.internal {
                                    return Err(inequivalent(
                                        "internal",
                                        d.internal.to_string(),
                                        x.internal.to_string(),
                                    ));
                                }
                            }
                        }
                        None if d.passive => return Err(Fail::not_found("exchange", name, vhost)),
                        None => {
                            if name.starts_with("amq.") {
                                return Err(Fail::access_refused(format!(
                                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                                )));
                            }
                            let Some(kind) = kind else {
                                return Err(Fail::command_invalid(format!(
                                    "unknown exchange type '{}'",
                                    d.kind.as_str()
                                )));
                            };
                            let mut x = Exchange::new(name, kind, d.durable);
                            x.auto_delete = d.auto_delete;
                            x.internal = d.internal;
                            x.arguments = d.arguments.clone();
                            v.exchanges.insert(name.to_owned(), x);
                            if d.durable {
                                model.save();
                            }
                        }
                    }
                }
                if !d.nowait {
                    self.reply(ch, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}))).await;
                }
            }
            exchange::AMQPMethod::Delete(d) => {
                let name = d.exchange.as_str();
                if name.is_empty() || name.starts_with("amq.") {
                    return Err(Fail::access_refused(format!("operation not permitted on exchange '{name}'")));
                }
                {
                    let vhost = self.vhost.as_str();
                    let mut model = shared.model.write().unwrap_or_else(|e| e.into_inner());
                    let v = model.vhost_existing_mut(vhost)?;
                    let mut save = false;
                    if let Some(x) = v.exchanges.get(name) {
                        if d.if_unused && (!x.bindings.is_empty() || v.is_destination(name)) {
                            return Err(Fail::precondition(format!("exchange '{name}' in vhost '{vhost}' in use")));
                        }
                        let durable = x.durable;
                        v.exchanges.remove(name);
                        let changed = v.unbind_all(&Dest::Exchange(name.to_owned()));
                        save = durable || changed;
                    }
                    if save {
                        model.save();
                    }
                }
                if !d.nowait {
                    self.reply(ch, AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}))).await;
                }
            }
            exchange::AMQPMethod::Bind(b) => {
                self.bind(
                    b.source.as_str(),
                    Dest::Exchange(b.destination.as_str().to_owned()),
                    b.routing_key.as_str(),
                    b.arguments,
                    true,
                )?;
                if !b.nowait {
                    self.reply(ch, AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {}))).await;
                }
            }
            exchange::AMQPMethod::Unbind(b) => {
                self.bind(
                    b.source.as_str(),
                    Dest::Exchange(b.destination.as_str().to_owned()),
                    b.routing_key.as_str(),
                    b.arguments,
                    false,
                )?;
                if !b.nowait {
                    self.reply(ch, AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}))).await;
                }
            }
            _ => return Err(Fail::command_invalid("unexpected exchange method")),
        }
        Ok(())
    }

    /// Adds or removes a binding (binding twice is one binding; removing a missing one is fine).
    fn bind(&self, source: &str, dest: Dest, key: &str, arguments: FieldTable, add: bool) -> Result<(), Fail> {
        if source.is_empty() {
            return Err(Fail::access_refused("operation not permitted on the default exchange"));
        }
        let vhost = self.vhost.as_str();
        let mut model = self.shared.model.write().unwrap_or_else(|e| e.into_inner());
        let v = model.vhost_existing_mut(vhost)?;
        let dest_durable = match &dest {
            Dest::Queue(q) => {
                let Some(handle) = v.queues.get(q) else { return Err(Fail::not_found("queue", q, vhost)) };
                crate::check_owner(handle, self.id)?;
                handle.durable
            }
            Dest::Exchange(e) => match v.exchanges.get(e) {
                Some(x) => x.durable,
                None => return Err(Fail::not_found("exchange", e, vhost)),
            },
        };
        let Some(x) = v.exchanges.get_mut(source) else { return Err(Fail::not_found("exchange", source, vhost)) };
        let binding = Binding { dest, key: key.to_owned(), arguments };
        let changed = if add {
            if x.bindings.contains(&binding) {
                false
            } else {
                x.bindings.push(binding);
                true
            }
        } else {
            let before = x.bindings.len();
            x.bindings
                .retain(|b| !(b.dest == binding.dest && b.key == binding.key && b.arguments == binding.arguments));
            x.bindings.len() != before
        };
        let durable = x.durable;
        if changed && durable && dest_durable {
            model.save();
        }
        Ok(())
    }

    pub(super) async fn queue_method(&mut self, ch: u16, m: queue::AMQPMethod) -> Result<(), Fail> {
        match m {
            queue::AMQPMethod::Declare(d) => {
                let (name, messages, consumers) = self.declare_queue(&d).await?;
                if !d.nowait {
                    let ok =
                        queue::DeclareOk { queue: short(&name), message_count: messages, consumer_count: consumers };
                    self.reply(ch, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))).await;
                }
            }
            queue::AMQPMethod::Bind(b) => {
                self.bind(
                    b.exchange.as_str(),
                    Dest::Queue(b.queue.as_str().to_owned()),
                    b.routing_key.as_str(),
                    b.arguments,
                    true,
                )?;
                if !b.nowait {
                    self.reply(ch, AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}))).await;
                }
            }
            queue::AMQPMethod::Unbind(b) => {
                self.bind(
                    b.exchange.as_str(),
                    Dest::Queue(b.queue.as_str().to_owned()),
                    b.routing_key.as_str(),
                    b.arguments,
                    false,
                )?;
                self.reply(ch, AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}))).await;
            }
            queue::AMQPMethod::Purge(p) => {
                let q = self.shared.queue(&self.vhost, self.id, p.queue.as_str())?;
                let n = q.ask(Cmd::Purge).await.unwrap_or(0);
                if !p.nowait {
                    self.reply(ch, AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count: n })))
                        .await;
                }
            }
            queue::AMQPMethod::Delete(d) => {
                let n =
                    self.shared.delete_queue(&self.vhost, self.id, d.queue.as_str(), d.if_unused, d.if_empty).await?;
                if !d.nowait {
                    self.reply(ch, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk { message_count: n })))
                        .await;
                }
            }
            _ => return Err(Fail::command_invalid("unexpected queue method")),
        }
        Ok(())
    }

    async fn declare_queue(&self, d: &queue::Declare) -> Result<(String, u32, u32), Fail> {
        let shared = self.shared.clone();
        let vhost = self.vhost.as_str();
        let _admin = shared.admin.lock().await;
        let mut name = d.queue.as_str().to_owned();
        let existing = |name: &str| -> Result<Option<Arc<QueueHandle>>, Fail> {
            Ok(shared.model.read().unwrap_or_else(|e| e.into_inner()).vhost(vhost)?.queues.get(name).cloned())
        };
        if name.is_empty() {
            name = format!("amq.gen-{}", random_suffix());
        } else if name.starts_with("amq.") && !d.passive && existing(&name)?.is_none() {
            return Err(Fail::access_refused(format!("queue name '{name}' contains reserved prefix 'amq.*'")));
        }
        let existing = existing(&name)?;
        let q = match existing {
            Some(q) => {
                crate::check_owner(&q, self.id)?;
                if !d.passive {
                    let inequivalent = |arg: &str, got: bool, have: bool| {
                        Fail::precondition(format!(
                            "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost}': received '{got}' but current is '{have}'"
                        ))
                    };
                    if q.durable != d.durable {
                        return Err(inequivalent("durable", d.durable, q.durable));
                    }
                    if q.auto_delete != d.auto_delete {
                        return Err(inequivalent("auto_delete", d.auto_delete, q.auto_delete));
                    }
                    if q.exclusive_owner.is_some() != d.exclusive {
                        return Err(inequivalent("exclusive", d.exclusive, q.exclusive_owner.is_some()));
                    }
                    if let Some((arg, got, have)) = crate::model::queue_args_inequivalence(&q.arguments, &d.arguments) {
                        return Err(Fail::precondition(format!(
                            "inequivalent arg '{arg}' for queue '{name}' in vhost '{vhost}': received {got} but current is {have}"
                        )));
                    }
                }
                q
            }
            None if d.passive => return Err(Fail::not_found("queue", &name, vhost)),
            None => {
                // `x-expires` must be a positive integer (ms), as RabbitMQ requires.
                if let Some(v) = d.arguments.inner().get("x-expires")
                    && crate::model::value_int(v).is_none_or(|ms| ms <= 0)
                {
                    return Err(Fail::precondition(format!(
                        "invalid arg 'x-expires' for queue '{name}' in vhost '{vhost}': not a positive integer"
                    )));
                }
                let native = d.arguments.inner().get("x-rocketmq-topic").and_then(crate::model::value_text);
                let spec = QueueSpec {
                    vhost: vhost.to_owned(),
                    name: name.clone(),
                    topic: native.clone().unwrap_or_default(),
                    durable: d.durable,
                    exclusive_owner: d.exclusive.then_some(self.id),
                    auto_delete: d.auto_delete,
                    arguments: d.arguments.clone(),
                };
                shared.create_queue(spec, native.is_none()).await?
            }
        };
        // A declare, passive or not, counts as a use for `x-expires` (as RabbitMQ's does).
        q.send(Cmd::Touch);
        let (ready, consumers) = q.ask(Cmd::Stats).await.unwrap_or((0, 0));
        Ok((name, ready, consumers))
    }
}

//! The names of a user-defined network's containers over DNS, as Docker's
//! embedded server gives them: a server on the network's gateway (in the
//! node's network) that containers on it use as their nameserver. It
//! answers A queries for the running containers' names and short IDs; any
//! other name does not exist (nothing outside the lab is reachable anyway),
//! and other record types of a known name have no data.

use std::net::Ipv4Addr;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, QTYPE, RCODE, ResourceRecord, TYPE};

/// Seconds a resolver may cache an answer: short, as containers come and go.
const TTL: u32 = 5;

/// The reply to the DNS message `query`, with `lookup` giving the address of
/// a name; `None` for what is not a query we can parse (dropped, as a
/// server drops garbage).
pub fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<Ipv4Addr>) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    let mut reply = Packet::new_reply(query.id());
    let mut known = true;
    for question in &query.questions {
        let asked = question.qname.to_string();
        let name = asked.trim_end_matches('.');
        match lookup(name) {
            Some(ip) => {
                if question.qtype == QTYPE::TYPE(TYPE::A) {
                    reply.answers.push(ResourceRecord::new(
                        question.qname.clone(),
                        CLASS::IN,
                        TTL,
                        RData::A(A::from(ip)),
                    ));
                }
            }
            None => known = false,
        }
        reply.questions.push(question.clone());
    }
    if !known {
        *reply.rcode_mut() = RCODE::NameError;
    }
    reply.build_bytes_vec().ok()
}

/// Answers queries on `socket` until the task is aborted.
pub async fn serve(
    socket: tokio::net::UdpSocket,
    lookup: impl Fn(&str) -> Option<Ipv4Addr> + Send + 'static,
) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], &lookup) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::Name;

    fn query(id: u16, name: &str, kind: TYPE) -> Vec<u8> {
        let mut packet = Packet::new_query(id);
        packet.questions.push(simple_dns::Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(kind),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        packet.build_bytes_vec().expect("a query")
    }

    fn lookup(name: &str) -> Option<Ipv4Addr> {
        (name == "db").then_some(Ipv4Addr::new(172, 18, 0, 2))
    }

    #[test]
    fn names_of_the_network_resolve_and_others_do_not() {
        let reply = answer(&query(7, "db", TYPE::A), lookup).expect("a reply");
        let reply = Packet::parse(&reply).expect("parse");
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.rcode(), RCODE::NoError);
        match &reply.answers[0].rdata {
            RData::A(a) => assert_eq!(Ipv4Addr::from(a.address), Ipv4Addr::new(172, 18, 0, 2)),
            other => panic!("{other:?}"),
        }
        let v6 = answer(&query(8, "db", TYPE::AAAA), lookup).expect("reply");
        let v6 = Packet::parse(&v6).expect("parse");
        assert_eq!((v6.rcode(), v6.answers.len()), (RCODE::NoError, 0));
        let none = answer(&query(9, "example.com", TYPE::A), lookup).expect("reply");
        let none = Packet::parse(&none).expect("parse");
        assert_eq!(none.rcode(), RCODE::NameError);
    }

    #[test]
    fn garbage_gets_no_reply() {
        assert!(answer(b"", lookup).is_none());
        assert!(answer(&[0xff; 11], lookup).is_none());
        assert!(answer(&[0u8; 600], lookup).is_some_and(|r| r.len() < 600));
    }
}

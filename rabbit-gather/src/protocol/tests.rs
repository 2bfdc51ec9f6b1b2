use std::time::Duration;

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};

use super::*;

/// The greetings wire: `{"name": ...}`, `{"names": [...]}`, `greeting`.
const G: &Contract = &Contract::GREETINGS;

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

fn json<T: Serialize + ?Sized>(value: &T) -> Json {
    Json::encode(value).expect("encodes")
}

/// A greetings answer.
fn greeting(text: &str) -> Outcome {
    Outcome::Ok(json(text))
}

#[test]
fn request_round_trips_including_unicode_and_quotes() {
    for n in ["Ada", "Zoë \"the\" \\ coder", "李小龙", "👋"] {
        let body = encode_request(G, &json(&name(n)));
        let decoded = decode_request(G, &body);
        assert_eq!(decoded, Ok(Request::Single(json(n))));
        let Ok(Request::Single(item)) = decoded else {
            panic!("{n}: a single request");
        };
        assert_eq!(item.decode::<Name>(), Ok(name(n)));
    }
    assert_eq!(encode_request(G, &json(&name("Ada"))), br#"{"name":"Ada"}"#);
}

#[test]
fn unknown_request_fields_are_ignored() {
    assert_eq!(
        decode_request(G, br#"{"name":"Ada","lang":"en","n":1}"#),
        Ok(Request::Single(json("Ada")))
    );
}

#[test]
fn each_kind_of_invalid_request_is_named() {
    // Refused whole by the decoder.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a JSON object"),
        (b"[\"Ada\"]".to_vec(), "not a JSON object"),
        (br#"{"nom": "Ada"}"#.to_vec(), "not a JSON object"),
        (vec![0xff, 0xfe, b'{'], "not UTF-8"),
        (vec![b' '; MAX_REQUEST_BYTES + 1], "4097 bytes"),
    ];
    for (body, needle) in cases {
        let err = decode_request(G, &body).expect_err(needle);
        assert_eq!(err.code(), INVALID_REQUEST);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    assert_eq!(
        decode_request(G, b"not json").map_err(|e| e.to_string()),
        Err(
            "body is not a JSON object with a \"name\" or an array \"names\": expected a JSON object"
                .to_owned()
        ),
        "the message names the contract's fields"
    );

    // Accepted by the decoder; refused when the service decodes the item as
    // its request type, a `Name`, with the reason as the reply's message.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"name": 42}"#.to_vec(), "expected a string"),
        (br#"{"name": null}"#.to_vec(), "expected a string"),
        (br#"{"name": ["Ada"]}"#.to_vec(), "expected a string"),
        (br#"{"name": ""}"#.to_vec(), "empty"),
        (br#"{"name": "   "}"#.to_vec(), "whitespace"),
        (br#"{"name": "a\nb"}"#.to_vec(), "control character"),
        (
            format!(r#"{{"name": "{}"}}"#, "x".repeat(101)).into_bytes(),
            "101 characters",
        ),
    ];
    for (body, needle) in cases {
        let Ok(Request::Single(item)) = decode_request(G, &body) else {
            panic!("{needle}: the decoder keeps the item");
        };
        let why = item.decode::<Name>().expect_err(needle);
        let err = InvalidRequest::Payload(why.clone());
        assert_eq!(err.code(), INVALID_REQUEST);
        assert_eq!(err.to_string(), why);
        assert!(why.contains(needle), "{needle}: {why}");
    }
    // A name's error is exactly its rule's message.
    let Ok(Request::Single(item)) = decode_request(G, br#"{"name": ""}"#) else {
        panic!("a single request");
    };
    assert_eq!(item.decode::<Name>(), Err(NameError::Empty.to_string()));
}

#[test]
fn a_batch_round_trips_and_each_name_is_validated_on_its_own() {
    let names = [name("Ada"), name("Zoë \"the\" \\ coder"), name("李小龙")];
    let items: Vec<Json> = names.iter().map(json).collect();
    let body = encode_batch_within(G, &items, MAX_BATCH_BYTES).expect("within the limits");
    assert_eq!(
        &body[..19],
        br#"{"names":["Ada","Zo"#,
        "the documented shape"
    );
    assert_eq!(
        body,
        serde_json::to_vec(&serde_json::json!({ "names": names })).expect("json"),
        "the bytes of contract v1.1"
    );
    assert_eq!(decode_request(G, &body), Ok(Request::Batch(items.clone())));
    let Ok(Request::Batch(decoded)) = decode_request(G, &body) else {
        panic!("a batch");
    };
    let decoded: Vec<Result<Name, String>> = decoded.iter().map(Json::decode).collect();
    assert_eq!(decoded, names.iter().cloned().map(Ok).collect::<Vec<_>>());

    let Ok(Request::Batch(mixed)) = decode_request(G, br#"{"names":["Ada",""," ",7,"Bob"]}"#)
    else {
        panic!("a batch whose items are decoded one by one");
    };
    let mixed: Vec<Result<Name, String>> = mixed.iter().map(Json::decode).collect();
    assert_eq!(mixed[0], Ok(name("Ada")));
    assert_eq!(mixed[1], Err(NameError::Empty.to_string()));
    assert_eq!(mixed[2], Err(NameError::Blank.to_string()));
    assert!(
        mixed[3]
            .as_ref()
            .is_err_and(|why| why.contains("expected a string")),
        "{:?}",
        mixed[3]
    );
    assert_eq!(mixed[4], Ok(name("Bob")));

    assert_eq!(
        encode_batch_within(G, &items[..1], MAX_BATCH_BYTES),
        Ok(encode_request(G, &items[0])),
        "a batch of one is sent in v1 form"
    );
}

#[test]
fn the_encoder_checks_the_limits_the_decoder_enforces() {
    assert_eq!(
        encode_batch_within(G, &[], MAX_BATCH_BYTES),
        Err(BatchError::Size {
            count: 0,
            max: MAX_BATCH_NAMES
        })
    );
    let many = vec![json("Ada"); MAX_BATCH_NAMES + 1];
    assert_eq!(
        encode_batch_within(G, &many, MAX_BATCH_BYTES),
        Err(BatchError::Size {
            count: MAX_BATCH_NAMES + 1,
            max: MAX_BATCH_NAMES
        })
    );
    let body = encode_batch_within(G, &many[..MAX_BATCH_NAMES], MAX_BATCH_BYTES).expect("fits");
    assert_eq!(
        body.len(),
        G.batch_overhead() - 1
            + many[..MAX_BATCH_NAMES]
                .iter()
                .map(item_bytes)
                .sum::<usize>(),
        "the overhead and item sizes add up to the body"
    );
    // 400 bytes of UTF-8 and 2 escaped quotes per name.
    let wide = name(&format!("\"{}\"", "😀".repeat(98)));
    let heavy = vec![json(&wide); 400];
    let Err(BatchError::TooLarge { bytes, limit }) =
        encode_batch_within(G, &heavy, MAX_BATCH_BYTES)
    else {
        panic!("400 wide names pass the byte limit");
    };
    assert_eq!(limit, MAX_BATCH_BYTES);
    let encoded =
        serde_json::to_vec(&serde_json::json!({ "names": vec![&wide; 400] })).expect("json");
    assert_eq!(bytes, encoded.len(), "the check counts exactly");
    assert_eq!(
        check_batch_within(G, &heavy, MAX_BATCH_BYTES),
        Err(BatchError::TooLarge { bytes, limit })
    );
    assert_eq!(
        decode_request(G, &encoded),
        Err(InvalidRequest::TooLarge {
            bytes,
            limit: MAX_BATCH_BYTES
        })
    );
    // The broker's limit, when smaller, is the one that counts.
    let Err(BatchError::TooLarge { limit, .. }) =
        encode_batch_within(G, &heavy[..100], MIN_MESSAGE_SIZE)
    else {
        panic!("100 wide names pass 8 KiB");
    };
    assert_eq!(limit, MIN_MESSAGE_SIZE);
    // One item is sent in the single form, within that form's limit.
    let big = json(&"x".repeat(MAX_REQUEST_BYTES));
    assert_eq!(
        check_batch_within(G, std::slice::from_ref(&big), MAX_BATCH_BYTES),
        Err(BatchError::TooLarge {
            bytes: encode_request(G, &big).len(),
            limit: MAX_REQUEST_BYTES
        })
    );
}

#[test]
fn each_kind_of_invalid_batch_is_named() {
    let too_many = serde_json::to_vec(&serde_json::json!({
        "names": vec!["Ada"; MAX_BATCH_NAMES + 1]
    }))
    .expect("json");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"names": []}"#.to_vec(), "0 items; 1 to 1000"),
        (too_many, "1001 items"),
        (br#"{"names": "Ada"}"#.to_vec(), "not a JSON object"),
        (br#"{"names": null}"#.to_vec(), "not a JSON object"),
        (br#"{"names": {"0": "Ada"}}"#.to_vec(), "not a JSON object"),
        (br#"{"name": "Ada", "names": ["Bob"]}"#.to_vec(), "both"),
        (
            format!(r#"{{"name": "Ada", "pad": "{}"}}"#, "x".repeat(5000)).into_bytes(),
            "more than the 4096 allowed",
        ),
    ];
    for (body, needle) in cases {
        let err = decode_request(G, &body).expect_err(needle);
        assert_eq!(err.code(), INVALID_REQUEST);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    assert_eq!(
        decode_request(G, br#"{"name": "Ada", "names": ["Bob"]}"#),
        Err(InvalidRequest::Both {
            request: "name",
            batch: "names"
        })
    );
    assert_eq!(
        decode_request(G, br#"{"names": []}"#),
        Err(InvalidRequest::BatchSize {
            count: 0,
            max: MAX_BATCH_NAMES
        })
    );
}

#[test]
fn batch_replies_round_trip_and_must_hold_one_outcome_each() {
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: vec![
            greeting("hello Ada"),
            Outcome::Error {
                code: INVALID_REQUEST.into(),
                message: "name is empty".into(),
            },
        ],
    };
    let body = reply.encode(G);
    assert_eq!(
        body,
        br#"{"consumer":"hello","results":[{"greeting":"hello Ada"},{"error":{"code":"invalid_request","message":"name is empty"}}]}"#
    );
    assert_eq!(decode_reply(G, &body), Ok(AnyReply::Batch(reply)));
    assert!(
        Reply::decode(G, &body).is_err(),
        "v1 decoding refuses a batch reply"
    );
    for bad in [
        br#"{"consumer":"hello","results":[{}]}"#.as_slice(),
        br#"{"consumer":"hello","results":[{"greeting":"a","error":{"code":"c","message":"m"}}]}"#,
        br#"{"consumer":"hello","greeting":"hi","results":[]}"#,
        br#"{"consumer":"hello","results":"x"}"#,
    ] {
        assert!(
            decode_reply(G, bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_reply_part_names_its_offset_after_the_consumer() {
    let part = BatchReply {
        consumer: "goodbye".into(),
        offset: Some(500),
        results: vec![greeting("goodbye Ada")],
    };
    let body = part.encode(G);
    assert_eq!(
        body,
        br#"{"consumer":"goodbye","offset":500,"results":[{"greeting":"goodbye Ada"}]}"#
    );
    assert_eq!(decode_reply(G, &body), Ok(AnyReply::Batch(part)));
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    assert!(decode_request(G, deep.as_bytes()).is_err());
    assert!(decode_reply(G, deep.as_bytes()).is_err());
    // Nested inside the request field, and inside a batch: whatever the
    // decoder makes of it, it does not pass as a name.
    // As deep as a batch body can hold.
    let deepest = format!("{}{}", "[".repeat(65_000), "]".repeat(65_000));
    for body in [
        format!(r#"{{"name":{deep}}}"#),
        format!(r#"{{"names":[{deep}]}}"#),
        format!(r#"{{"names":[{deepest}]}}"#),
    ] {
        match decode_request(G, body.as_bytes()) {
            Ok(Request::Single(item)) => assert!(item.decode::<Name>().is_err()),
            Ok(Request::Batch(items)) => {
                assert!(items.iter().all(|item| item.decode::<Name>().is_err()));
            }
            Err(e) => assert_eq!(e.code(), INVALID_REQUEST),
        }
    }
    let reply = format!(r#"{{"consumer":"hello","greeting":{deep}}}"#);
    if let Ok(AnyReply::Single(Reply { outcome, .. })) = decode_reply(G, reply.as_bytes()) {
        assert!(matches!(
            outcome.decode::<String>(),
            Outcome::Error { code, .. } if code == names::MALFORMED_REPLY
        ));
    }
}

#[test]
fn replies_round_trip_and_match_the_documented_shape() {
    let ok = Reply {
        consumer: "hello".into(),
        outcome: greeting("hello Ada"),
    };
    assert_eq!(
        ok.encode(G),
        br#"{"consumer":"hello","greeting":"hello Ada"}"#
    );
    assert_eq!(Reply::decode(G, &ok.encode(G)), Ok(ok.clone()));
    assert_eq!(
        ok.outcome.decode::<String>(),
        Outcome::Ok("hello Ada".to_owned())
    );

    let err = Reply {
        consumer: "hello".into(),
        outcome: Outcome::Error {
            code: INVALID_REQUEST.into(),
            message: "name is empty".into(),
        },
    };
    assert_eq!(
        err.encode(G),
        br#"{"consumer":"hello","error":{"code":"invalid_request","message":"name is empty"}}"#
    );
    assert_eq!(Reply::decode(G, &err.encode(G)), Ok(err));
}

#[test]
fn malformed_replies_are_refused() {
    for bad in [
        &b"nope"[..],
        br#"{"consumer":"hello"}"#,
        br#"{"greeting":"hello Ada"}"#,
        br#"{"consumer":"hello","greeting":"x","error":{"code":"a","message":"b"}}"#,
    ] {
        assert!(
            Reply::decode(G, bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_roll_call_answer_is_the_consumer_alone() {
    let body = encode_presence("hello");
    assert_eq!(body, br#"{"consumer":"hello"}"#);
    let decoded = decode_reply(G, &body);
    assert_eq!(decoded, Ok(AnyReply::Present("hello".to_owned())));
    assert_eq!(
        decoded.map(|r| r.consumer().to_owned()),
        Ok("hello".to_owned())
    );
    assert!(
        Reply::decode(G, &body).is_err(),
        "not an answer to a request"
    );

    let call = roll_call_properties("c-1", DIRECT_REPLY_TO, Duration::from_secs(1));
    assert!(is_roll_call(&call));
    assert_eq!(
        ReturnAddress::from_properties(&call),
        Some(ReturnAddress {
            reply_to: DIRECT_REPLY_TO.into(),
            correlation_id: "c-1".into()
        })
    );
    let request = request_properties("c-1", DIRECT_REPLY_TO, Duration::from_secs(1), false);
    assert!(!is_roll_call(&request));
    assert!(!is_roll_call(&request.with_type("something-else".into())));
}

#[test]
fn a_reply_with_both_an_answer_and_results_is_refused() {
    for (contract, bad) in [
        (G, br#"{"consumer":"hello","greeting":"hi","results":[{"greeting":"hi"}]}"#.as_slice()),
        (
            G,
            br#"{"consumer":"hello","error":{"code":"c","message":"m"},"results":[{"greeting":"hi"}]}"#,
        ),
        (
            &Contract::DEFAULT,
            br#"{"consumer":"orders","reply":{"id":1},"results":[{"reply":1}]}"#,
        ),
    ] {
        let decoded = decode_reply(contract, bad);
        assert!(
            decoded.is_err(),
            "{}: {decoded:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn is_json_accepts_json_or_nothing_and_refuses_other_types() {
    let with = |kind: &str| BasicProperties::default().with_content_type(kind.into());
    assert!(is_json(&BasicProperties::default()), "absent");
    assert!(is_json(&with("application/json")));
    assert!(is_json(&with("application/json; charset=utf-8")));
    assert!(is_json(&with("Application/JSON")));
    for refused in ["text/plain", "application/jsonx", "application/xml", ""] {
        assert!(!is_json(&with(refused)), "{refused:?}");
    }
}

/// A payload of another application than greetings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    items: Vec<String>,
    note: Option<String>,
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    order: u32,
    total_cents: u64,
}

#[test]
fn a_non_greetings_contract_round_trips_a_struct_payload() {
    let contract = &Contract::DEFAULT;
    let order = Order {
        id: 7,
        items: vec!["tea".into(), "\"scones\"".into()],
        note: None,
    };
    let body = encode_request(contract, &json(&order));
    assert_eq!(
        body,
        br#"{"request":{"id":7,"items":["tea","\"scones\""],"note":null}}"#
    );
    let Ok(Request::Single(item)) = decode_request(contract, &body) else {
        panic!("a single request");
    };
    assert_eq!(item.decode::<Order>(), Ok(order.clone()));

    let other = Order {
        id: 8,
        items: Vec::new(),
        note: Some("李".into()),
    };
    let items = [json(&order), json(&other)];
    let body = encode_batch_within(contract, &items, usize::MAX).expect("fits");
    assert_eq!(
        body,
        r#"{"requests":[{"id":7,"items":["tea","\"scones\""],"note":null},{"id":8,"items":[],"note":"李"}]}"#
            .as_bytes()
    );
    let Ok(Request::Batch(decoded)) = decode_request(contract, &body) else {
        panic!("a batch");
    };
    let decoded: Vec<Result<Order, String>> = decoded.iter().map(Json::decode).collect();
    assert_eq!(decoded, vec![Ok(order.clone()), Ok(other)]);
    // An item of the wrong shape fails alone, with serde's reason.
    let Ok(Request::Batch(mixed)) = decode_request(
        contract,
        br#"{"requests":[{"id":1,"items":[]},{"id":"x"}]}"#,
    ) else {
        panic!("a batch");
    };
    assert!(
        mixed[0].decode::<Order>().is_ok(),
        "a missing Option is None"
    );
    assert!(mixed[1].decode::<Order>().is_err());

    // The greetings fields mean nothing here.
    assert_eq!(
        decode_request(contract, br#"{"name":"Ada"}"#),
        Err(InvalidRequest::NotJson {
            request: "request",
            batch: "requests",
            detail: "expected \"request\" or an array \"requests\"".to_owned()
        })
    );

    let receipt = Receipt {
        order: 7,
        total_cents: 1250,
    };
    let reply = Reply {
        consumer: "orders".into(),
        outcome: Outcome::Ok(json(&receipt)),
    };
    let body = reply.encode(contract);
    assert_eq!(
        body,
        br#"{"consumer":"orders","reply":{"order":7,"total_cents":1250}}"#
    );
    let decoded = Reply::decode(contract, &body).expect("a reply");
    assert_eq!(decoded, reply);
    assert_eq!(
        decoded.outcome.clone().decode::<Receipt>(),
        Outcome::Ok(receipt.clone())
    );
    assert!(
        matches!(
            decoded.outcome.decode::<Order>(),
            Outcome::Error { code, .. } if code == names::MALFORMED_REPLY
        ),
        "an answer of another type is a malformed reply"
    );

    let batch = BatchReply {
        consumer: "orders".into(),
        offset: None,
        results: vec![
            Outcome::Ok(json(&receipt)),
            Outcome::Error {
                code: names::REQUEST_FAILED.into(),
                message: "out of scones".into(),
            },
        ],
    };
    let body = batch.encode(contract);
    assert_eq!(
        body,
        br#"{"consumer":"orders","results":[{"reply":{"order":7,"total_cents":1250}},{"error":{"code":"request_failed","message":"out of scones"}}]}"#
    );
    assert_eq!(decode_reply(contract, &body), Ok(AnyReply::Batch(batch)));
}

#[test]
fn request_properties_carry_the_contract_fields() {
    let p = request_properties("c-1", DIRECT_REPLY_TO, Duration::from_millis(2500), true);
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some(CONTENT_TYPE)
    );
    assert_eq!(p.correlation_id().as_ref().map(|s| s.as_str()), Some("c-1"));
    assert_eq!(
        p.reply_to().as_ref().map(|s| s.as_str()),
        Some(DIRECT_REPLY_TO)
    );
    assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("2500"));
    assert_eq!(*p.delivery_mode(), Some(2));
    assert!(p.timestamp().is_some_and(|t| t > 1_700_000_000));
    assert_eq!(
        ReturnAddress::from_properties(&p),
        Some(ReturnAddress {
            reply_to: DIRECT_REPLY_TO.into(),
            correlation_id: "c-1".into()
        })
    );
}

#[test]
fn a_request_missing_reply_to_or_correlation_id_is_one_way() {
    let only_reply = BasicProperties::default().with_reply_to("amq.gen-x".into());
    let only_id = BasicProperties::default().with_correlation_id("c".into());
    let empty_id = only_reply.clone().with_correlation_id("".into());
    for p in [only_reply, only_id, empty_id, BasicProperties::default()] {
        assert_eq!(ReturnAddress::from_properties(&p), None);
    }
}

mod fuzz {
    //! Property tests of the request decoder: whatever the bytes, it never
    //! panics and every refusal is an `invalid_request`.

    use proptest::prelude::*;

    use super::*;

    fn check(contract: &Contract, body: &[u8]) {
        match decode_request(contract, body) {
            Ok(Request::Single(item)) => {
                assert!(body.len() <= contract.max_request_bytes);
                let text = std::str::from_utf8(body).expect("a decoded body is UTF-8");
                assert!(text.contains(item.as_str()), "the item is kept as sent");
                if let Ok(name) = item.decode::<Name>() {
                    assert_eq!(Name::parse(name.as_str()).as_ref(), Ok(&name));
                }
            }
            Ok(Request::Batch(items)) => {
                assert!(body.len() <= contract.max_batch_bytes);
                assert!((1..=contract.max_batch_items).contains(&items.len()));
                let text = std::str::from_utf8(body).expect("a decoded body is UTF-8");
                for item in &items {
                    assert!(text.contains(item.as_str()), "the item is kept as sent");
                    if let Ok(name) = item.decode::<Name>() {
                        assert_eq!(Name::parse(name.as_str()).as_ref(), Ok(&name));
                    }
                }
            }
            Err(e) => assert_eq!(e.code(), INVALID_REQUEST),
        }
        // Nor does the reply decoder.
        let _ = decode_reply(contract, body);
        let _ = decode_done(contract, body, 3);
    }

    /// Arbitrary JSON values, nested up to a few levels.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..6000)) {
            check(G, &body);
            check(&Contract::DEFAULT, &body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in json()) {
            let body = serde_json::to_vec(&value).unwrap_or_default();
            check(G, &body);
            check(&Contract::DEFAULT, &body);
        }

        #[test]
        fn any_name_field_is_accepted_exactly_when_the_name_is_valid(
            name in any::<String>(),
            extra in json(),
        ) {
            let body = serde_json::to_vec(&serde_json::json!({"name": name, "extra": extra}))
                .unwrap_or_default();
            let decoded = decode_request(G, &body);
            if body.len() > MAX_REQUEST_BYTES {
                let too_large = matches!(decoded, Err(InvalidRequest::TooLarge { .. }));
                prop_assert!(too_large, "{:?}", decoded);
            } else {
                let Ok(Request::Single(item)) = decoded else {
                    return Err(TestCaseError::fail(format!("{decoded:?}")));
                };
                prop_assert_eq!(item.decode::<String>(), Ok(name.clone()));
                prop_assert_eq!(
                    item.decode::<Name>(),
                    Name::parse(&name).map_err(|e| e.to_string())
                );
            }
        }

        #[test]
        fn wrong_types_for_name_are_refused(value in json()) {
            prop_assume!(!value.is_string());
            let body = serde_json::to_vec(&serde_json::json!({"name": value})).unwrap_or_default();
            match decode_request(G, &body) {
                Ok(Request::Single(item)) => {
                    prop_assert_eq!(&item, &super::json(&value), "kept as sent");
                    prop_assert!(item.decode::<Name>().is_err());
                }
                other => {
                    let too_large = body.len() > MAX_REQUEST_BYTES
                        && matches!(other, Err(InvalidRequest::TooLarge { .. }));
                    prop_assert!(too_large, "{:?}", other);
                }
            }
        }

        #[test]
        fn replies_round_trip(
            consumer in any::<String>(),
            answers in prop::collection::vec(json(), 1..4),
            code in ".*",
            message in ".*",
        ) {
            let mut results: Vec<Outcome> =
                answers.iter().map(|a| Outcome::Ok(super::json(a))).collect();
            results.push(Outcome::Error { code, message });
            for outcome in &results {
                let reply = Reply { consumer: consumer.clone(), outcome: outcome.clone() };
                prop_assert_eq!(Reply::decode(G, &reply.encode(G)), Ok(reply.clone()));
                prop_assert_eq!(
                    Reply::decode(&Contract::DEFAULT, &reply.encode(&Contract::DEFAULT)),
                    Ok(reply)
                );
            }
            let batch = BatchReply { consumer: consumer.clone(), offset: None, results };
            prop_assert_eq!(decode_reply(G, &batch.encode(G)), Ok(AnyReply::Batch(batch)));
            prop_assert_eq!(
                decode_reply(G, &encode_presence(&consumer)),
                Ok(AnyReply::Present(consumer))
            );
        }
    }
}

fn greetings(n: usize, chars: usize) -> Vec<Outcome> {
    (0..n)
        .map(|i| greeting(&format!("{i:05}{}", "x".repeat(chars))))
        .collect()
}

#[test]
fn a_batch_over_the_contracts_batch_limit_is_refused_whatever_the_single_limit() {
    let contract = &Contract {
        max_request_bytes: 8192,
        max_batch_bytes: 1024,
        ..Contract::DEFAULT
    };
    let items = vec![json(&"x".repeat(100)); 20];
    let body = serde_json::to_vec(&serde_json::json!({ "requests": items })).expect("json");
    let Err(BatchError::TooLarge { bytes, limit }) =
        check_batch_within(contract, &items, usize::MAX)
    else {
        panic!("the sender refuses it");
    };
    assert_eq!((bytes, limit), (body.len(), 1024));
    assert_eq!(
        decode_request(contract, &body),
        Err(InvalidRequest::TooLarge {
            bytes: body.len(),
            limit: 1024
        }),
        "the service refuses what the sender refuses"
    );
}

#[test]
fn a_batch_reply_that_fits_is_one_whole_body() {
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: greetings(10, 10),
    };
    let bodies = reply.encode_within(G, MIN_MESSAGE_SIZE);
    assert_eq!(bodies, [reply.encode(G)]);
    assert!(!String::from_utf8_lossy(&bodies[0]).contains("offset"));
}

#[test]
fn a_batch_reply_too_large_goes_in_parts_within_the_limit_that_cover_every_result_in_order() {
    for (n, chars, limit) in [(1000, 100, 65_536), (1000, 60, 8_192), (3, 3000, 8_192)] {
        let reply = BatchReply {
            consumer: "goodbye".into(),
            offset: None,
            results: greetings(n, chars),
        };
        let bodies = reply.encode_within(G, limit);
        assert!(bodies.len() > 1, "{n} x {chars} over {limit}");
        let mut next = 0;
        let mut results = Vec::new();
        for body in &bodies {
            assert!(body.len() <= limit, "{} > {limit}", body.len());
            assert!(
                body.starts_with(format!(r#"{{"consumer":"goodbye","offset":{next},"#).as_bytes()),
                "the offset after the consumer"
            );
            let AnyReply::Batch(part) = decode_reply(G, body).expect("a batch reply") else {
                panic!("a batch part");
            };
            assert_eq!(part.consumer, "goodbye");
            assert_eq!(part.offset, Some(next), "consecutive parts");
            assert!(!part.results.is_empty());
            next += part.results.len();
            results.extend(part.results);
        }
        assert_eq!(results, reply.results, "every result, in order");
    }
}

#[test]
fn an_answer_too_large_even_alone_becomes_a_reply_too_large_error() {
    let huge = greeting(&"y".repeat(20_000));
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: vec![greeting("hello Ada"), huge.clone()],
    };
    let bodies = reply.encode_within(G, MIN_MESSAGE_SIZE);
    let results: Vec<Outcome> = bodies
        .iter()
        .flat_map(|body| match decode_reply(G, body).expect("reply") {
            AnyReply::Batch(part) => part.results,
            other => panic!("a batch part: {other:?}"),
        })
        .collect();
    assert_eq!(results[0], greeting("hello Ada"));
    let Outcome::Error { code, message } = &results[1] else {
        panic!("{:?}", results[1]);
    };
    assert_eq!(code, names::REPLY_TOO_LARGE);
    assert!(message.contains("more than the 8192"), "{message}");

    let single = Reply {
        consumer: "hello".into(),
        outcome: huge,
    };
    let body = single.encode_within(G, MIN_MESSAGE_SIZE);
    assert!(body.len() <= MIN_MESSAGE_SIZE);
    let decoded = Reply::decode(G, &body).expect("reply");
    assert!(
        matches!(&decoded.outcome, Outcome::Error { code, .. } if code == names::REPLY_TOO_LARGE),
        "{decoded:?}"
    );
}

#[test]
fn a_batch_retry_copy_carries_the_known_results_within_the_limit() {
    let body = br#"{"names":["Ada","Flaky",""]}"#;
    let known = vec![
        Some(greeting("hello Ada")),
        None,
        Some(Outcome::Error {
            code: INVALID_REQUEST.into(),
            message: "name is empty".into(),
        }),
    ];
    let copy = encode_retry_batch(G, body, &known, MIN_MESSAGE_SIZE).expect("fits");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&copy).expect("json"),
        serde_json::json!({
            "names": ["Ada", "Flaky", ""],
            "done": [
                {"greeting": "hello Ada"},
                null,
                {"error": {"code": "invalid_request", "message": "name is empty"}}
            ]
        }),
        "the documented shape"
    );
    assert_eq!(decode_done(G, &copy, 3), Some(known.clone()));
    let Ok(Request::Batch(names)) = decode_request(G, &copy) else {
        panic!("the copy is still the batch");
    };
    assert_eq!(names.len(), 3);
    assert_eq!(
        decode_done(G, &copy, 2),
        None,
        "one result per name or none"
    );
    assert_eq!(decode_done(G, body, 3), None, "a request carries none");
    // A copy of a copy replaces its `done`.
    let again = encode_retry_batch(G, &copy, &[None, None, None], MIN_MESSAGE_SIZE).expect("fits");
    assert_eq!(decode_done(G, &again, 3), Some(vec![None, None, None]));
    let huge = vec![Some(greeting(&"x".repeat(MIN_MESSAGE_SIZE))), None, None];
    assert_eq!(
        encode_retry_batch(G, body, &huge, MIN_MESSAGE_SIZE),
        None,
        "too large: the copy carries the request as it was"
    );
}

#[test]
fn a_null_sibling_field_counts_as_absent_but_a_null_answer_is_an_answer() {
    let g = &Contract::GREETINGS;
    assert!(matches!(
        decode_request(g, br#"{"name":"Ada","names":null}"#),
        Ok(Request::Single(_))
    ));
    for body in [
        &br#"{"consumer":"c","greeting":"hi","error":null}"#[..],
        br#"{"consumer":"c","greeting":"hi","results":null}"#,
    ] {
        assert!(
            matches!(decode_reply(g, body), Ok(AnyReply::Single(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(matches!(
        decode_reply(g, br#"{"consumer":"c","offset":null,"results":[]}"#),
        Ok(AnyReply::Batch(BatchReply { offset: None, .. }))
    ));
    let unit = decode_reply(&Contract::DEFAULT, br#"{"consumer":"c","reply":null}"#);
    assert!(
        matches!(&unit, Ok(AnyReply::Single(Reply { outcome: Outcome::Ok(answer), .. })) if answer.as_str() == "null"),
        "{unit:?}"
    );
}

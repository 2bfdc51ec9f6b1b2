use super::*;

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

#[test]
fn request_round_trips_including_unicode_and_quotes() {
    for n in ["Ada", "Zoë \"the\" \\ coder", "李小龙", "👋"] {
        assert_eq!(
            decode_request(&encode_request(&name(n))),
            Ok(Request::Single(name(n)))
        );
    }
    assert_eq!(encode_request(&name("Ada")), br#"{"name":"Ada"}"#);
}

#[test]
fn unknown_request_fields_are_ignored() {
    assert_eq!(
        decode_request(br#"{"name":"Ada","lang":"en","n":1}"#),
        Ok(Request::Single(name("Ada")))
    );
}

#[test]
fn each_kind_of_invalid_request_is_named() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not a JSON object"),
        (b"[\"Ada\"]".to_vec(), "not a JSON object"),
        (br#"{"name": 42}"#.to_vec(), "not a JSON object"),
        (br#"{"nom": "Ada"}"#.to_vec(), "not a JSON object"),
        (br#"{"name": null}"#.to_vec(), "not a JSON object"),
        (vec![0xff, 0xfe, b'{'], "not UTF-8"),
        (br#"{"name": ""}"#.to_vec(), "empty"),
        (br#"{"name": "   "}"#.to_vec(), "whitespace"),
        (br#"{"name": "a\nb"}"#.to_vec(), "control character"),
        (
            format!(r#"{{"name": "{}"}}"#, "x".repeat(101)).into_bytes(),
            "101 characters",
        ),
        (vec![b' '; MAX_REQUEST_BYTES + 1], "4097 bytes"),
    ];
    for (body, needle) in cases {
        let err = decode_request(&body).expect_err(needle);
        assert_eq!(err.code(), INVALID_REQUEST);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn a_batch_round_trips_and_each_name_is_validated_on_its_own() {
    let names = [name("Ada"), name("Zoë \"the\" \\ coder"), name("李小龙")];
    let body = encode_names(&names).expect("within the limits");
    assert_eq!(
        &body[..19],
        br#"{"names":["Ada","Zo"#,
        "the documented shape"
    );
    assert_eq!(
        decode_request(&body),
        Ok(Request::Batch(names.iter().cloned().map(Ok).collect()))
    );
    assert_eq!(
        decode_request(br#"{"names":["Ada",""," ","Bob"]}"#),
        Ok(Request::Batch(vec![
            Ok(name("Ada")),
            Err(NameError::Empty),
            Err(NameError::Blank),
            Ok(name("Bob")),
        ]))
    );
    assert_eq!(
        encode_names(&names[..1]),
        Ok(encode_request(&names[0])),
        "a batch of one is sent in v1 form"
    );
}

#[test]
fn the_encoder_checks_the_limits_the_decoder_enforces() {
    assert_eq!(encode_names(&[]), Err(BatchError::Size { count: 0 }));
    let many = vec![name("Ada"); MAX_BATCH_NAMES + 1];
    assert_eq!(
        encode_names(&many),
        Err(BatchError::Size {
            count: MAX_BATCH_NAMES + 1
        })
    );
    assert!(encode_names(&many[..MAX_BATCH_NAMES]).is_ok());
    // 400 bytes of UTF-8 and 2 escaped quotes per name.
    let wide = name(&format!("\"{}\"", "😀".repeat(98)));
    let heavy = vec![wide; 400];
    let Err(BatchError::TooLarge { bytes, .. }) = encode_names(&heavy) else {
        panic!("400 wide names pass the byte limit");
    };
    let encoded = serde_json::to_vec(&serde_json::json!({ "names": heavy })).expect("json");
    assert_eq!(bytes, encoded.len(), "the check counts exactly");
    assert_eq!(
        decode_request(&encoded),
        Err(InvalidRequest::TooLarge {
            bytes,
            limit: MAX_BATCH_BYTES
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
        (br#"{"names": []}"#.to_vec(), "0 names; 1 to 1000"),
        (too_many, "1001 names"),
        (br#"{"names": "Ada"}"#.to_vec(), "not a JSON object"),
        (br#"{"names": ["Ada", 7]}"#.to_vec(), "not a JSON object"),
        (br#"{"names": null}"#.to_vec(), "not a JSON object"),
        (br#"{"name": "Ada", "names": ["Bob"]}"#.to_vec(), "both"),
        (
            format!(r#"{{"name": "Ada", "pad": "{}"}}"#, "x".repeat(5000)).into_bytes(),
            "more than the 4096 allowed",
        ),
    ];
    for (body, needle) in cases {
        let err = decode_request(&body).expect_err(needle);
        assert_eq!(err.code(), INVALID_REQUEST);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn batch_replies_round_trip_and_must_hold_one_outcome_each() {
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: vec![
            Outcome::Greeting("hello Ada".into()),
            Outcome::Error {
                code: INVALID_REQUEST.into(),
                message: "name is empty".into(),
            },
        ],
    };
    let body = reply.encode();
    assert_eq!(
        body,
        br#"{"consumer":"hello","results":[{"greeting":"hello Ada"},{"error":{"code":"invalid_request","message":"name is empty"}}]}"#
    );
    assert_eq!(decode_reply(&body), Ok(AnyReply::Batch(reply)));
    assert!(
        Reply::decode(&body).is_err(),
        "v1 decoding refuses a batch reply"
    );
    for bad in [
        br#"{"consumer":"hello","results":[{}]}"#.as_slice(),
        br#"{"consumer":"hello","results":[{"greeting":"a","error":{"code":"c","message":"m"}}]}"#,
        br#"{"consumer":"hello","greeting":"hi","results":[]}"#,
        br#"{"consumer":"hello","results":"x"}"#,
    ] {
        assert!(
            decode_reply(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    assert!(decode_request(deep.as_bytes()).is_err());
}

#[test]
fn replies_round_trip_and_match_the_documented_shape() {
    let ok = Reply {
        consumer: "hello".into(),
        outcome: Outcome::Greeting("hello Ada".into()),
    };
    assert_eq!(
        ok.encode(),
        br#"{"consumer":"hello","greeting":"hello Ada"}"#
    );
    assert_eq!(Reply::decode(&ok.encode()), Ok(ok));

    let err = Reply {
        consumer: "hello".into(),
        outcome: Outcome::Error {
            code: INVALID_REQUEST.into(),
            message: "name is empty".into(),
        },
    };
    assert_eq!(
        err.encode(),
        br#"{"consumer":"hello","error":{"code":"invalid_request","message":"name is empty"}}"#
    );
    assert_eq!(Reply::decode(&err.encode()), Ok(err));
}

#[test]
fn malformed_replies_are_refused() {
    for bad in [
        &b"nope"[..],
        br#"{"consumer":"hello"}"#,
        br#"{"greeting":"hello Ada"}"#,
        br#"{"consumer":"hello","greeting":"x","error":{"code":"a","message":"b"}}"#,
    ] {
        assert!(Reply::decode(bad).is_err());
    }
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

    fn check(body: &[u8]) {
        match decode_request(body) {
            Ok(Request::Single(name)) => {
                assert!(body.len() <= MAX_REQUEST_BYTES);
                assert_eq!(Name::parse(name.as_str()).as_ref(), Ok(&name));
            }
            Ok(Request::Batch(names)) => {
                assert!(body.len() <= MAX_BATCH_BYTES);
                assert!((1..=MAX_BATCH_NAMES).contains(&names.len()));
            }
            Err(e) => assert_eq!(e.code(), INVALID_REQUEST),
        }
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
            check(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in json()) {
            check(&serde_json::to_vec(&value).unwrap_or_default());
        }

        #[test]
        fn any_name_field_is_accepted_exactly_when_the_name_is_valid(
            name in any::<String>(),
            extra in json(),
        ) {
            let body = serde_json::to_vec(&serde_json::json!({"name": name, "extra": extra}))
                .unwrap_or_default();
            let decoded = decode_request(&body);
            if body.len() > MAX_REQUEST_BYTES {
                let too_large = matches!(decoded, Err(InvalidRequest::TooLarge { .. }));
                prop_assert!(too_large, "{:?}", decoded);
            } else {
                prop_assert_eq!(decoded.ok(), Name::parse(&name).ok().map(Request::Single));
            }
        }

        #[test]
        fn wrong_types_for_name_are_refused(value in json()) {
            prop_assume!(!value.is_string());
            let body = serde_json::to_vec(&serde_json::json!({"name": value})).unwrap_or_default();
            prop_assert!(decode_request(&body).is_err());
        }
    }
}

fn greetings(n: usize, chars: usize) -> Vec<Outcome> {
    (0..n)
        .map(|i| Outcome::Greeting(format!("{i:05}{}", "x".repeat(chars))))
        .collect()
}

#[test]
fn a_batch_reply_that_fits_is_one_whole_body() {
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: greetings(10, 10),
    };
    let bodies = reply.encode_within(MIN_MESSAGE_SIZE);
    assert_eq!(bodies, [reply.encode()]);
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
        let bodies = reply.encode_within(limit);
        assert!(bodies.len() > 1, "{n} x {chars} over {limit}");
        let mut next = 0;
        let mut results = Vec::new();
        for body in &bodies {
            assert!(body.len() <= limit, "{} > {limit}", body.len());
            let AnyReply::Batch(part) = decode_reply(body).expect("a batch reply") else {
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
    let huge = Outcome::Greeting("y".repeat(20_000));
    let reply = BatchReply {
        consumer: "hello".into(),
        offset: None,
        results: vec![Outcome::Greeting("hello Ada".into()), huge.clone()],
    };
    let bodies = reply.encode_within(MIN_MESSAGE_SIZE);
    let results: Vec<Outcome> = bodies
        .iter()
        .flat_map(|body| match decode_reply(body).expect("reply") {
            AnyReply::Batch(part) => part.results,
            AnyReply::Single(_) => panic!("a batch part"),
        })
        .collect();
    assert_eq!(results[0], Outcome::Greeting("hello Ada".into()));
    let Outcome::Error { code, message } = &results[1] else {
        panic!("{:?}", results[1]);
    };
    assert_eq!(code, names::REPLY_TOO_LARGE);
    assert!(message.contains("more than the 8192"), "{message}");

    let single = Reply {
        consumer: "hello".into(),
        outcome: huge,
    };
    let body = single.encode_within(MIN_MESSAGE_SIZE);
    assert!(body.len() <= MIN_MESSAGE_SIZE);
    let decoded = Reply::decode(&body).expect("reply");
    assert!(
        matches!(&decoded.outcome, Outcome::Error { code, .. } if code == names::REPLY_TOO_LARGE),
        "{decoded:?}"
    );
}

#[test]
fn a_batch_retry_copy_carries_the_known_results_within_the_limit() {
    let body = br#"{"names":["Ada","Flaky",""]}"#;
    let known = vec![
        Some(Outcome::Greeting("hello Ada".into())),
        None,
        Some(Outcome::Error {
            code: INVALID_REQUEST.into(),
            message: "name is empty".into(),
        }),
    ];
    let copy = encode_retry_batch(body, &known, MIN_MESSAGE_SIZE).expect("fits");
    assert_eq!(decode_done(&copy, 3), Some(known));
    let Ok(Request::Batch(names)) = decode_request(&copy) else {
        panic!("the copy is still the batch");
    };
    assert_eq!(names.len(), 3);
    assert_eq!(decode_done(&copy, 2), None, "one result per name or none");
    assert_eq!(decode_done(body, 3), None, "a request carries none");
    let huge = vec![
        Some(Outcome::Greeting("x".repeat(MIN_MESSAGE_SIZE))),
        None,
        None,
    ];
    assert_eq!(
        encode_retry_batch(body, &huge, MIN_MESSAGE_SIZE),
        None,
        "too large: the copy carries the request as it was"
    );
}

//! Messages after the upgrade: binary only, packets across and within messages, size bound,
//! ping, close, and how writes are cut into messages.

use std::io;

use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use super::{Served, WAIT, close_code, mqtt_client, receive, serve_one, settings};
use crate::ws::transport::MAX_OUT_MESSAGE;
use crate::ws::{MESSAGE_SLACK, WsError};

#[tokio::test]
async fn text_message_closes_the_connection_with_1003() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    ws.send(Message::text("\u{10}\u{0e}")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));
    drop(ws);
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Echoed { end: Err(e), .. } => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(WsError::TextMessage)
            ));
        }
        other => panic!("expected the text message to end the connection, got {other:?}"),
    }
}

#[tokio::test]
async fn packets_split_across_messages_and_sharing_messages_arrive_in_order() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    let connect = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1".to_vec();
    let mut sent = Vec::new();
    for piece in [&connect[..1], &connect[1..2], &connect[2..9], &connect[9..]] {
        ws.send(Message::binary(piece.to_vec())).await.unwrap();
        sent.extend_from_slice(piece);
    }
    let mut three = b"\xc0\x00".to_vec();
    three.extend_from_slice(b"\x30\x05\x00\x01ahi");
    three.extend_from_slice(b"\xe0\x00");
    ws.send(Message::binary(three.clone())).await.unwrap();
    sent.extend_from_slice(&three);
    let (echoed, _) = receive(&mut ws, sent.len()).await;
    assert_eq!(echoed, sent);
}

#[tokio::test]
async fn fragmented_message_is_reassembled() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    ws.send(Message::Frame(Frame::message(
        &b"\x30\x05"[..],
        OpCode::Data(Data::Binary),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        &b"\x00\x01a"[..],
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        &b"hi"[..],
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let (echoed, messages) = receive(&mut ws, 7).await;
    assert_eq!(echoed, b"\x30\x05\x00\x01ahi");
    assert_eq!(
        messages, 1,
        "the server reads one message, echoed as one write"
    );
}

#[tokio::test]
async fn message_larger_than_the_packet_bound_is_refused_with_1009() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    ws.send(Message::binary(vec![0u8; 1024 + MESSAGE_SLACK + 1]))
        .await
        .unwrap();
    let code = close_code(&mut ws).await;
    assert!(matches!(code, Some(CloseCode::Size) | None), "{code:?}");
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Echoed { end: Err(e), .. } => {
            assert!(matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(WsError::TooLarge(_))
            ));
        }
        other => panic!("expected the oversized message to end the connection, got {other:?}"),
    }
}

#[tokio::test]
async fn message_at_the_packet_bound_is_accepted() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    let message = vec![7u8; 1024 + MESSAGE_SLACK];
    ws.send(Message::binary(message.clone())).await.unwrap();
    assert_eq!(receive(&mut ws, message.len()).await.0, message);
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let (addr, _task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    match timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Pong(data))) => assert_eq!(&data[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn close_frame_is_the_end_of_the_stream() {
    let (addr, task) = serve_one(settings(&[]), 1024).await;
    let mut ws = mqtt_client(addr).await;
    ws.send(Message::binary(b"\xe0\x00".to_vec()))
        .await
        .unwrap();
    assert_eq!(receive(&mut ws, 2).await.0, b"\xe0\x00");
    ws.close(None).await.unwrap();
    match timeout(WAIT, task).await.unwrap().unwrap() {
        Served::Echoed { end: Ok(()), .. } => {}
        other => panic!("expected a clean end of stream, got {other:?}"),
    }
    // The server answered our close frame.
    match timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(_)) | Err(_)) | None => {}
        other => panic!("expected the close reply, got {other:?}"),
    }
}

#[tokio::test]
async fn long_write_is_sent_as_bounded_messages() {
    let total = 3 * MAX_OUT_MESSAGE + 5;
    let (addr, _task) = serve_one(settings(&[]), u32::try_from(total).unwrap()).await;
    let mut ws = mqtt_client(addr).await;
    let payload: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    let (echoed, messages) = receive(&mut ws, total).await;
    assert_eq!(echoed, payload);
    assert_eq!(messages, 4);
}

//! The fixtures' data, byte for byte the reference server's: the base64 media, the JSON text
//! `test_multiple_content_types` embeds, and the content items built from them.

use serde_json::{json, Value};

/// A 1×1 red PNG, base64 (the reference server's `TEST_IMAGE_BASE64`).
pub(super) const TEST_IMAGE_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64 (the reference server's `TEST_AUDIO_BASE64`).
pub(super) const TEST_AUDIO_BASE64: &str =
    "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The text of the JSON resource embedded by `test_multiple_content_types`, byte for byte what
/// `JSON.stringify({test: 'data', value: 123})` gives.
pub(super) const MIXED_CONTENT_JSON: &str = r#"{"test":"data","value":123}"#;

pub(super) fn image_item() -> Value {
    json!({"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"})
}

pub(super) fn text_item(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

#[cfg(test)]
mod tests {
    use super::super::testing::base64_decode;
    use super::*;

    #[test]
    fn the_image_is_a_1x1_png_and_the_audio_a_wav() {
        let png = base64_decode(TEST_IMAGE_BASE64);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 1, 0, 0, 0, 1], "1×1 pixels");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");

        let wav = base64_decode(TEST_AUDIO_BASE64);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
    }
}

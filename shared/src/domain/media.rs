//! What the worker asks of its video tools (clips conformed to their scene, clips composed into
//! one video, files probed), as plain data: the worker speaks these words, and the ffmpeg adapter
//! behind the `VideoTools` port turns them into command lines.

pub use crate::domain::render::VideoFormat;

/// The container of a composed video: the format the client asked for.
pub type OutputFormat = VideoFormat;

impl VideoFormat {
    /// The file extension (and the API's name).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            VideoFormat::Mp4 => "video/mp4",
            VideoFormat::Webm => "video/webm",
            VideoFormat::Gif => "image/gif",
        }
    }
}

/// What went wrong with a video tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// ffmpeg or ffprobe is not installed (or not where configured).
    #[error("{0}")]
    Missing(String),
    /// A tool ran and failed.
    #[error("{what} failed: {stderr}")]
    Failed { what: &'static str, stderr: String },
    /// A request that cannot be rendered (no clips, zero frames…).
    #[error("{0}")]
    Invalid(String),
}

/// A line of text shown over part of the video.
#[derive(Debug, Clone, PartialEq)]
pub struct Subtitle {
    /// From (seconds).
    pub start: f64,
    /// Until (seconds).
    pub end: f64,
    /// What it says.
    pub text: String,
}

/// How clips become one video.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    /// The story's width.
    pub width: u32,
    /// The story's height.
    pub height: u32,
    /// The story's frame rate.
    pub fps: u32,
    /// Size factor by quality (1.0 keeps the story's size).
    pub scale: f64,
    /// Container.
    pub format: OutputFormat,
    /// Text drawn in a corner throughout (previews).
    pub watermark: Option<String>,
    /// Text burnt in over time (finals, from narration prompts).
    pub subtitles: Vec<Subtitle>,
}

impl Composition {
    /// The output size: the story's size times `scale`, rounded to even numbers (codecs need them).
    pub fn output_size(&self) -> (u32, u32) {
        let side = |v: u32| (((f64::from(v) * self.scale) / 2.0).round() as u32 * 2).max(2);
        (side(self.width), side(self.height))
    }
}

/// What ffprobe says about a video.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Container length in seconds.
    pub duration_seconds: f64,
    /// Width of the first video stream.
    pub width: u32,
    /// Height of the first video stream.
    pub height: u32,
    /// Frame rate of the first video stream.
    pub fps: f64,
    /// Codec of the first video stream (`h264`, `vp8`, `gif`).
    pub codec: String,
    /// Frames counted by decoding.
    pub frames: u64,
    /// Container format names.
    pub format: String,
}

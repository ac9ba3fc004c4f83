//! Video work, for real, with ffmpeg: title-card clips for the built-in `local` provider, and the
//! composition of clips into a preview or final video (watermark, burnt-in subtitles, scaling by
//! quality, mp4/webm/gif). ffprobe reads the results back.
//!
//! Text never goes into a filter string: it is written to files that `drawtext` reads
//! (`textfile=`), so a prompt's quotes, colons or `%{...}` cannot change the filter graph.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

pub use crate::domain::media::{Composition, MediaError, OutputFormat, Probe, Subtitle};

/// A title-card clip: a scene rendered offline at the story's size, rate and exact length.
#[derive(Debug, Clone, PartialEq)]
pub struct TitleCard {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Length in whole frames (≥ 1).
    pub frames: u32,
    /// The story's title, on top (at most two lines).
    pub title: String,
    /// The scene line, e.g. `Scene 1 · intro · 4.0 s`.
    pub heading: String,
    /// The rest, e.g. the prompt text (wrapped and clipped to fit).
    pub body: String,
}

/// The card's colours: text on a dark slate, the progress marker in amber.
pub const CARD_BACKGROUND: [u8; 3] = [0x1f, 0x29, 0x37];
const CARD_BACKGROUND_HEX: &str = "0x1f2937";

/// Text stays inside this fraction of each edge, inside the 5 % safe margin that players,
/// thumbnails and TV overscan may crop (a margin of its own for rounding and the font's overhang).
const TEXT_MARGIN: f64 = 0.07;

/// A monospaced font's advance is 0.6 em (DejaVu Sans Mono: 1233/2048), so a line's width is
/// known from its character count; a little more for safety.
const MONO_ADVANCE_EM: f64 = 0.62;

/// Where a monospaced font lives on Debian/Ubuntu and Amazon Linux; else fontconfig's `monospace`.
const MONO_FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
];

/// How many columns `c` takes in a monospaced line: East Asian wide characters and emoji take two.
fn columns_of(c: char) -> usize {
    let wide = matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// One block of text on the card: its lines, size and top.
struct TextBlock {
    text: String,
    size: u32,
    y: u32,
}

/// Lays the card's text out inside the safe area: the title (≤ 2 lines), the scene line, then as
/// much of the body as fits, each wrapped to the columns its font size allows.
fn card_layout(card: &TitleCard) -> [TextBlock; 3] {
    let (w, h) = (f64::from(card.width), f64::from(card.height));
    let safe_w = w * (1.0 - 2.0 * TEXT_MARGIN);
    let top = (h * TEXT_MARGIN).ceil();
    // The bottom of the text area: above the progress marker's lane.
    let bottom = h * (1.0 - TEXT_MARGIN) - f64::from(marker_size(card)) * 2.0;
    let base = w.min(h);
    let title_size = (base / 13.0).max(8.0);
    let heading_size = (base / 20.0).max(8.0);
    let body_size = (base / 22.0).max(8.0);
    let columns = |size: f64| ((safe_w / (size * MONO_ADVANCE_EM)).floor() as usize).max(4);
    // A line's height with drawtext's line spacing (a third of the size, set below).
    let line = |size: f64| size * (1.17 + 1.0 / 3.0);
    let title = wrap(&card.title, columns(title_size), 2);
    let heading = wrap(&card.heading, columns(heading_size), 1);
    let title_lines = title.lines().count().max(1) as f64;
    let heading_y = top + title_lines * line(title_size) + heading_size * 0.5;
    let body_y = heading_y + line(heading_size) + body_size * 0.8;
    let body_lines = ((bottom - body_y) / line(body_size)).floor().max(0.0) as usize;
    let body = if body_lines == 0 { String::new() } else { wrap(&card.body, columns(body_size), body_lines) };
    [
        TextBlock { text: title, size: title_size as u32, y: top as u32 },
        TextBlock { text: heading, size: heading_size as u32, y: heading_y.ceil() as u32 },
        TextBlock { text: body, size: body_size as u32, y: body_y.ceil() as u32 },
    ]
}

fn marker_size(card: &TitleCard) -> u32 {
    (card.height.min(card.width) / 30).max(2)
}

/// The two tools, located once.
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
}

fn wrap(text: &str, width: usize, max_lines: usize) -> String {
    let width = width.max(2);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for word in text.split_whitespace() {
        let word_columns: usize = word.chars().map(columns_of).sum();
        if used > 0 && used + 1 + word_columns > width {
            lines.push(std::mem::take(&mut line));
            used = 0;
        }
        if used > 0 {
            line.push(' ');
            used += 1;
        }
        // A word longer than a line is cut across lines.
        for c in word.chars() {
            let c_columns = columns_of(c);
            if used + c_columns > width {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            line.push(c);
            used += c_columns;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            // Room for the ellipsis within the width.
            while last.chars().map(columns_of).sum::<usize>() + 1 > width {
                last.pop();
            }
            last.push('…');
        }
    }
    lines.join("\n")
}

/// Escapes a path for use as a filter option value.
fn filter_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ':' | '\'' | ',' | ';' | '[' | ']' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn parse_rate(rate: &str) -> f64 {
    match rate.split_once('/') {
        Some((n, d)) => {
            let (n, d) = (n.parse::<f64>().unwrap_or(0.0), d.parse::<f64>().unwrap_or(1.0));
            if d == 0.0 { 0.0 } else { n / d }
        }
        None => rate.parse().unwrap_or(0.0),
    }
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    nb_read_frames: Option<String>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
    format_name: Option<String>,
}

#[async_trait::async_trait]
impl crate::ports::VideoTools for Ffmpeg {
    async fn probe(&self, file: &Path) -> Result<Probe, MediaError> {
        Ffmpeg::probe(self, file).await
    }

    async fn conform(
        &self,
        input: &Path,
        width: u32,
        height: u32,
        fps: u32,
        frames: u32,
        out: &Path,
    ) -> Result<(), MediaError> {
        Ffmpeg::conform(self, input, width, height, fps, frames, out).await
    }

    async fn compose(&self, clips: &[PathBuf], spec: &Composition, out: &Path) -> Result<(), MediaError> {
        Ffmpeg::compose(self, clips, spec, out).await
    }
}

impl Ffmpeg {
    /// The tools named by `AIVIDEO_FFMPEG` / `AIVIDEO_FFPROBE` (else found on `PATH`), not run
    /// yet: a function's cold start starts no child process. A missing tool is reported by the
    /// first job that needs it (`MediaError::Missing`).
    pub fn configured() -> Self {
        let ffmpeg = std::env::var_os("AIVIDEO_FFMPEG").map_or_else(|| PathBuf::from("ffmpeg"), PathBuf::from);
        let ffprobe = std::env::var_os("AIVIDEO_FFPROBE").map_or_else(|| PathBuf::from("ffprobe"), PathBuf::from);
        Self { ffmpeg, ffprobe }
    }

    /// Finds ffmpeg and ffprobe (`AIVIDEO_FFMPEG` / `AIVIDEO_FFPROBE`, else on `PATH`) and checks
    /// they run, so a missing tool is reported at start-up, not at the first render.
    pub fn locate() -> Result<Self, MediaError> {
        let Self { ffmpeg, ffprobe } = Self::configured();
        Self::at(ffmpeg, ffprobe)
    }

    /// Uses the tools at these paths, after checking they run.
    pub fn at(ffmpeg: PathBuf, ffprobe: PathBuf) -> Result<Self, MediaError> {
        for (name, path) in [("ffmpeg", &ffmpeg), ("ffprobe", &ffprobe)] {
            let runs = std::process::Command::new(path)
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !runs {
                return Err(MediaError::Missing(format!(
                    "{name} not found at {:?}: install it (Debian/Ubuntu: apt-get install ffmpeg) or set AIVIDEO_{}",
                    path,
                    name.to_uppercase()
                )));
            }
        }
        Ok(Self { ffmpeg, ffprobe })
    }

    async fn run(&self, what: &'static str, args: &[String]) -> Result<(), MediaError> {
        let output = tokio::process::Command::new(&self.ffmpeg)
            .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| MediaError::Missing(format!("cannot run ffmpeg: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String =
                stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            Err(MediaError::Failed { what, stderr: tail })
        }
    }

    /// Renders a title card of exactly `card.frames` frames as H.264 MP4 at `out`: the title, the
    /// scene line and the wrapped body on a dark card, all inside the safe area (nothing within 5 %
    /// of an edge), and a marker crossing the card as time passes.
    pub async fn title_card(&self, card: &TitleCard, out: &Path) -> Result<(), MediaError> {
        if card.frames == 0 || card.fps == 0 || card.width < 2 || card.height < 2 {
            return Err(MediaError::Invalid("a clip needs at least one frame and a size".into()));
        }
        let text_dir = tempfile::tempdir().map_err(|e| MediaError::Invalid(e.to_string()))?;
        let font = MONO_FONTS
            .iter()
            .find(|f| Path::new(f).exists())
            .map(|f| format!("fontfile={}", filter_path(Path::new(f))))
            .unwrap_or_else(|| "font=monospace".to_owned());
        let x = (f64::from(card.width) * TEXT_MARGIN).ceil() as u32;
        let mut text_filters = String::new();
        for (i, block) in card_layout(card).iter().enumerate() {
            if block.text.is_empty() {
                continue;
            }
            let file = text_dir.path().join(format!("card-{i}.txt"));
            std::fs::write(&file, &block.text).map_err(|e| MediaError::Invalid(e.to_string()))?;
            let colour = if i == 1 { "0xfbbf24" } else { "white" };
            text_filters.push_str(&format!(
                ",drawtext={font}:textfile={}:fontcolor={colour}:fontsize={}:x={x}:y={}:line_spacing={}",
                filter_path(&file),
                block.size,
                block.y,
                block.size / 3
            ));
        }
        let marker = marker_size(card);
        let last = card.frames.saturating_sub(1).max(1);
        // The marker crosses the card as time passes, inside the safe area like the text.
        let lane_y = (f64::from(card.height) * (1.0 - TEXT_MARGIN)).floor() as u32 - marker;
        let travel = card.width.saturating_sub(2 * x + marker);
        let filter = format!("[0:v][1:v]overlay=x='{x}+{travel}*min(1,n/{last})':y={lane_y}:shortest=1{text_filters}");
        let args: Vec<String> = vec![
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("color=c={CARD_BACKGROUND_HEX}:s={}x{}:r={}", card.width, card.height, card.fps),
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("color=c=0xf59e0b:s={marker}x{marker}:r={}", card.fps),
            "-filter_complex".into(),
            filter,
            "-frames:v".into(),
            card.frames.to_string(),
            "-r".into(),
            card.fps.to_string(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            out.to_string_lossy().into_owned(),
        ];
        self.run("title card", &args).await
    }

    /// Joins `clips` in order into one video at `out`, scaled, watermarked and subtitled as asked.
    pub async fn compose(&self, clips: &[PathBuf], spec: &Composition, out: &Path) -> Result<(), MediaError> {
        if clips.is_empty() {
            return Err(MediaError::Invalid("nothing to compose".into()));
        }
        let text_dir = tempfile::tempdir().map_err(|e| MediaError::Invalid(e.to_string()))?;
        let (width, height) = spec.output_size();
        // Every clip is brought to the story's size and rate first, so concat gets equal streams.
        let mut graph: Vec<String> = (0..clips.len())
            .map(|i| format!("[{i}:v]scale={}:{},setsar=1,fps={}[c{i}]", spec.width, spec.height, spec.fps))
            .collect();
        let normalised: String = (0..clips.len()).map(|i| format!("[c{i}]")).collect();
        let mut chain = format!("{normalised}concat=n={}:v=1:a=0,scale={width}:{height}", clips.len());
        let font_size = (height / 18).max(8);
        for (i, subtitle) in spec.subtitles.iter().enumerate() {
            let file = text_dir.path().join(format!("subtitle-{i}.txt"));
            std::fs::write(&file, wrap(&subtitle.text, (width / 12).max(12) as usize, 2))
                .map_err(|e| MediaError::Invalid(e.to_string()))?;
            chain.push_str(&format!(
                ",drawtext=textfile={}:fontcolor=white:fontsize={font_size}:box=1:boxcolor=black@0.5:boxborderw=6:\
                 x=(w-text_w)/2:y=h-text_h-{}:enable='between(t,{:.3},{:.3})'",
                filter_path(&file),
                font_size,
                subtitle.start,
                subtitle.end
            ));
        }
        if let Some(mark) = &spec.watermark {
            let file = text_dir.path().join("watermark.txt");
            std::fs::write(&file, mark).map_err(|e| MediaError::Invalid(e.to_string()))?;
            chain.push_str(&format!(
                ",drawtext=textfile={}:fontcolor=white@0.6:fontsize={}:x=w-text_w-10:y=10",
                filter_path(&file),
                (height / 16).max(8)
            ));
        }
        if spec.format == OutputFormat::Gif {
            chain.push_str(",split[g1][g2];[g1]palettegen[p];[g2][p]paletteuse");
        }
        chain.push_str("[out]");
        graph.push(chain);
        let mut args: Vec<String> = Vec::new();
        for clip in clips {
            args.push("-i".into());
            args.push(clip.to_string_lossy().into_owned());
        }
        args.extend([
            "-filter_complex".into(),
            graph.join(";"),
            "-map".into(),
            "[out]".into(),
            "-r".into(),
            spec.fps.to_string(),
        ]);
        match spec.format {
            OutputFormat::Mp4 => args.extend(
                ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
                    .map(String::from),
            ),
            OutputFormat::Webm => args
                .extend(["-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8"].map(String::from)),
            OutputFormat::Gif => args.extend(["-f", "gif"].map(String::from)),
        }
        args.push(out.to_string_lossy().into_owned());
        self.run("composition", &args).await
    }

    /// Fits a provider's clip to its scene: exactly `frames` frames at `fps`, `width`x`height`
    /// (scaled to fit, letterboxed), H.264. Providers render their own lengths (5 s, 8 s …) and
    /// sizes; a short clip holds its last frame, a long one is cut.
    pub async fn conform(
        &self,
        input: &Path,
        width: u32,
        height: u32,
        fps: u32,
        frames: u32,
        out: &Path,
    ) -> Result<(), MediaError> {
        if frames == 0 || fps == 0 || width < 2 || height < 2 {
            return Err(MediaError::Invalid("a clip needs at least one frame and a size".into()));
        }
        let filter = format!(
            "fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,tpad=stop_mode=clone:stop=-1"
        );
        let args: Vec<String> = vec![
            "-i".into(),
            input.to_string_lossy().into_owned(),
            "-an".into(),
            "-vf".into(),
            filter,
            "-frames:v".into(),
            frames.to_string(),
            "-r".into(),
            fps.to_string(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            out.to_string_lossy().into_owned(),
        ];
        self.run("conforming a clip", &args).await
    }

    /// An image scaled and cropped to exactly `width`x`height` PNG (Stability's image-to-video
    /// takes three sizes only).
    pub async fn fit_image(&self, input: &Path, width: u32, height: u32, out: &Path) -> Result<(), MediaError> {
        let filter =
            format!("scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1");
        let args: Vec<String> = vec![
            "-i".into(),
            input.to_string_lossy().into_owned(),
            "-vf".into(),
            filter,
            "-frames:v".into(),
            "1".into(),
            out.to_string_lossy().into_owned(),
        ];
        self.run("fitting an image", &args).await
    }

    /// Reads a video's length, size, rate, codec and frame count.
    pub async fn probe(&self, file: &Path) -> Result<Probe, MediaError> {
        let output = tokio::process::Command::new(&self.ffprobe)
            .args(["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries"])
            .arg("stream=codec_name,width,height,r_frame_rate,nb_read_frames:format=duration,format_name")
            .args(["-of", "json"])
            .arg(file)
            .output()
            .await
            .map_err(|e| MediaError::Missing(format!("cannot run ffprobe: {e}")))?;
        if !output.status.success() {
            return Err(MediaError::Failed {
                what: "ffprobe",
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let parsed: ProbeOutput = serde_json::from_slice(&output.stdout)
            .map_err(|e| MediaError::Failed { what: "ffprobe", stderr: e.to_string() })?;
        let stream = parsed
            .streams
            .into_iter()
            .next()
            .ok_or_else(|| MediaError::Failed { what: "ffprobe", stderr: "no video stream".into() })?;
        let format = parsed.format.unwrap_or(ProbeFormat { duration: None, format_name: None });
        Ok(Probe {
            duration_seconds: format.duration.and_then(|d| d.parse().ok()).unwrap_or(0.0),
            width: stream.width.unwrap_or(0),
            height: stream.height.unwrap_or(0),
            fps: stream.r_frame_rate.as_deref().map_or(0.0, parse_rate),
            codec: stream.codec_name.unwrap_or_default(),
            frames: stream.nb_read_frames.and_then(|n| n.parse().ok()).unwrap_or(0),
            format: format.format_name.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_wrapped_and_clipped() {
        assert_eq!(wrap("a b c", 3, 5), "a b\nc");
        assert_eq!(wrap("one two three four", 3, 2), "one\ntw…");
        assert_eq!(wrap("abcdefgh", 3, 5), "abc\ndef\ngh", "a word longer than a line is cut across lines");
        assert_eq!(wrap("여우가 눈 숲을", 7, 5), "여우가\n눈 숲을", "wide characters take two columns");
        assert_eq!(wrap("", 10, 2), "");
    }

    #[test]
    fn filter_paths_escape_separators() {
        assert_eq!(filter_path(Path::new("/tmp/a:b'c,d")), "/tmp/a\\:b\\'c\\,d");
    }

    #[test]
    fn output_sizes_stay_even() {
        let spec = Composition {
            width: 640,
            height: 360,
            fps: 24,
            scale: 0.5,
            format: OutputFormat::Mp4,
            watermark: None,
            subtitles: vec![],
        };
        assert_eq!(spec.output_size(), (320, 180));
        let odd = Composition { scale: 0.33, ..spec };
        let (w, h) = odd.output_size();
        assert!(w % 2 == 0 && h % 2 == 0);
    }

    #[test]
    fn frame_rates_parse() {
        assert_eq!(parse_rate("24/1"), 24.0);
        assert_eq!(parse_rate("30000/1001"), 30000.0 / 1001.0);
        assert_eq!(parse_rate("0/0"), 0.0);
    }
}

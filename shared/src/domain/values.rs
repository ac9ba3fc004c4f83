//! Newtypes that cannot hold an invalid value ("parse, don't validate"). Each `parse` returns the
//! message a client sees under the field's name.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, min: $min:expr, max: $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Fewest characters allowed.
            pub const MIN: usize = $min;
            /// Most characters allowed.
            pub const MAX: usize = $max;

            /// Trims surrounding white space (as DRF's `CharField` does) and checks the length.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let text = raw.trim();
                let len = text.chars().count();
                if len == 0 && Self::MIN > 0 {
                    return Err("This field may not be blank.".to_owned());
                }
                if len > Self::MAX {
                    return Err(format!("Ensure this field has no more than {} characters.", Self::MAX));
                }
                if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
                    return Err("This field may not contain control characters.".to_owned());
                }
                Ok(Self(text.to_owned()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_value!(
    /// A story's title: 1–200 characters.
    Title, min: 1, max: 200
);
text_value!(
    /// A story's description: at most 5000 characters.
    Description, min: 0, max: 5000
);

impl Default for SceneTitle {
    /// Empty.
    fn default() -> Self {
        Self(String::new())
    }
}

impl Default for Description {
    /// Empty.
    fn default() -> Self {
        Self(String::new())
    }
}
text_value!(
    /// A visual style such as `cinematic`, `anime`, `documentary`, `commercial`: 1–50 characters.
    StylePreset, min: 1, max: 50
);
text_value!(
    /// A scene's title: at most 200 characters.
    SceneTitle, min: 0, max: 200
);
text_value!(
    /// A prompt's text: 1–4000 characters.
    PromptText, min: 1, max: 4000
);
text_value!(
    /// Why a story moved (required when it fails): at most 1000 characters.
    Reason, min: 0, max: 1000
);

impl Default for StylePreset {
    fn default() -> Self {
        Self("cinematic".to_owned())
    }
}

macro_rules! bounded_integer {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, default: $default:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "u32")]
        pub struct $name(u32);

        impl $name {
            /// Smallest value allowed.
            pub const MIN: u32 = $min;
            /// Largest value allowed.
            pub const MAX: u32 = $max;

            /// Checks the range.
            pub fn parse(value: i64) -> Result<Self, String> {
                if value < i64::from(Self::MIN) {
                    Err(format!("Ensure this value is greater than or equal to {}.", Self::MIN))
                } else if value > i64::from(Self::MAX) {
                    Err(format!("Ensure this value is less than or equal to {}.", Self::MAX))
                } else {
                    Ok(Self(value as u32))
                }
            }

            /// The value.
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(value: i64) -> Result<Self, String> {
                Self::parse(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value.0
            }
        }
    };
}

bounded_integer!(
    /// A story's length in whole seconds: 5–600.
    DurationSeconds, 5, 600, default: 60
);
bounded_integer!(
    /// Frames per second: 1–60.
    Fps, 1, 60, default: 24
);

impl DurationSeconds {
    /// The story's length in whole frames at `fps`: the unit the scene planner allocates.
    pub fn frames(self, fps: Fps) -> u32 {
        self.0 * fps.0
    }
}

/// A client-side grouping number: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Project(i64);

impl Project {
    /// The largest project number: fifteen digits, exact in every JSON client's numbers.
    pub const MAX: i64 = 999_999_999_999_999;

    /// Any integer from 1 to `MAX`.
    pub fn parse(value: i64) -> Result<Self, String> {
        if value < 1 {
            Err("Ensure this value is greater than or equal to 1.".to_owned())
        } else if value > Self::MAX {
            Err(format!("Ensure this value is less than or equal to {}.", Self::MAX))
        } else {
            Ok(Self(value))
        }
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Project {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        Self::parse(value)
    }
}

impl From<Project> for i64 {
    fn from(value: Project) -> i64 {
        value.0
    }
}

/// Frame size `WIDTHxHEIGHT`: both even (video codecs need it), each 128–3840.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resolution {
    width: u32,
    height: u32,
}

impl Resolution {
    /// Smallest side.
    pub const MIN_SIDE: u32 = 128;
    /// Largest side.
    pub const MAX_SIDE: u32 = 3840;

    /// Parses `1920x1080`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let shape = || "Enter a resolution as WIDTHxHEIGHT, for example 1920x1080.".to_owned();
        let (w, h) = raw.trim().split_once('x').ok_or_else(shape)?;
        let side = |s: &str| -> Result<u32, String> {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(shape());
            }
            s.parse::<u32>().map_err(|_| shape())
        };
        let (width, height) = (side(w)?, side(h)?);
        for (name, value) in [("width", width), ("height", height)] {
            if !(Self::MIN_SIDE..=Self::MAX_SIDE).contains(&value) {
                return Err(format!("The {name} must be between {} and {}.", Self::MIN_SIDE, Self::MAX_SIDE));
            }
            if value % 2 != 0 {
                return Err(format!("The {name} must be even."));
            }
        }
        Ok(Self { width, height })
    }

    /// Width in pixels.
    pub fn width(self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(self) -> u32 {
        self.height
    }
}

impl Default for Resolution {
    fn default() -> Self {
        Self { width: 1920, height: 1080 }
    }
}

impl TryFrom<String> for Resolution {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Resolution> for String {
    fn from(value: Resolution) -> String {
        value.to_string()
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Declares a closed set of lowercase choices with DRF's "not a valid choice" message.
macro_rules! choices {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every choice, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The choice's wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a wire name.
            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("\"{}\" is not a valid choice.", raw.chars().take(100).collect::<String>())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use choices;

choices!(
    /// Which AI video provider renders a story; `local` is the built-in offline renderer.
    AiProvider {
        /// Built-in offline renderer (ffmpeg).
        Local = "local",
        /// Runway.
        Runway = "runway",
        /// Luma Dream Machine.
        Luma = "luma",
        /// Google Veo through the Gemini API.
        Veo = "veo",
        /// Replicate predictions.
        Replicate = "replicate",
        /// fal.ai queue.
        Fal = "fal",
        /// Stability AI.
        StabilityAi = "stability_ai",
    }
);

// The `choices!` macro derives no `Default`, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for AiProvider {
    fn default() -> Self {
        AiProvider::Local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Hello ").unwrap().as_str(), "Hello");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(Title::parse("bell\u{7}").is_err());
    }

    #[test]
    fn description_may_be_empty_but_not_huge() {
        assert!(Description::parse("").is_ok());
        assert!(Description::parse(&"a".repeat(5000)).is_ok());
        assert!(Description::parse(&"a".repeat(5001)).is_err());
    }

    #[test]
    fn duration_and_fps_have_their_ranges() {
        assert!(DurationSeconds::parse(4).is_err());
        assert!(DurationSeconds::parse(5).is_ok());
        assert!(DurationSeconds::parse(600).is_ok());
        assert!(DurationSeconds::parse(601).is_err());
        assert!(DurationSeconds::parse(-5).is_err());
        assert!(Fps::parse(0).is_err());
        assert!(Fps::parse(60).is_ok());
        assert!(Fps::parse(61).is_err());
        assert_eq!(DurationSeconds::parse(10).unwrap().frames(Fps::parse(24).unwrap()), 240);
    }

    #[test]
    fn resolution_must_be_even_and_in_range() {
        let r = Resolution::parse("640x360").unwrap();
        assert_eq!((r.width(), r.height()), (640, 360));
        assert_eq!(r.to_string(), "640x360");
        for bad in [
            "641x360",
            "640x361",
            "126x360",
            "3842x360",
            "640",
            "x",
            "640x",
            "-640x360",
            "640X360",
            "640x360x2",
            "99999999999x2",
            "+640x360",
            "６40x360",
        ] {
            assert!(Resolution::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Resolution::parse("3840x2160").is_ok());
        assert!(Resolution::parse("128x128").is_ok());
        // Surrounding white space is trimmed, as DRF's CharField trims it.
        assert_eq!(Resolution::parse(" 640x360\n").map(|r| (r.width(), r.height())), Ok((640, 360)));
    }

    #[test]
    fn provider_choices_are_closed() {
        assert_eq!(AiProvider::parse("stability_ai").unwrap(), AiProvider::StabilityAi);
        assert!(AiProvider::parse("sora").is_err());
        assert!(AiProvider::parse("LOCAL").is_err());
        assert_eq!(AiProvider::ALL.len(), 7);
    }

    #[test]
    fn stored_values_are_validated_when_read_back() {
        assert!(serde_json::from_str::<Title>("\"\"").is_err());
        assert!(serde_json::from_str::<Fps>("0").is_err());
        assert!(serde_json::from_str::<Resolution>("\"7x7\"").is_err());
    }
}

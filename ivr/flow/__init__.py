"""The YAML IVR flow language: loader, validator, pure interpreter and simulator.

Pure core (no asyncio, no network, no other ``ivr`` package): the call session feeds
``FlowRunner`` events and executes the commands it returns. See docs/flows.md.
"""

from .diagnostics import Diagnostic
from .engine import FlowRunner
from .loader import load_flow_dir, load_flow_file, load_flow_sources, load_flow_text
from .model import Flow, FlowSet, Secret
from .protocol import (
    Answer,
    CallInfo,
    CancelTimer,
    Command,
    CustomerData,
    DigitReceived,
    DiscardRecording,
    Enqueue,
    Event,
    FlowEnded,
    Hangup,
    HungUp,
    NodeEntered,
    PathStep,
    Play,
    PlaybackFinished,
    QueueResult,
    Record,
    RecordingFinished,
    RequestCallback,
    SetLanguage,
    StartTimer,
    StopPlayback,
    StoreVoicemail,
    TimerFired,
    Transfer,
    TransferResult,
)

__all__ = [
    "Answer", "CallInfo", "CancelTimer", "Command", "CustomerData", "Diagnostic", "DigitReceived", "DiscardRecording",
    "Enqueue",
    "Event", "Flow", "FlowEnded", "FlowRunner", "FlowSet", "Hangup", "HungUp", "NodeEntered", "PathStep", "Play",
    "PlaybackFinished", "QueueResult", "Record", "RecordingFinished", "RequestCallback", "Secret", "SetLanguage",
    "StartTimer", "StopPlayback", "StoreVoicemail", "TimerFired", "Transfer", "TransferResult", "load_flow_dir", "load_flow_file",
    "load_flow_sources", "load_flow_text",
]
